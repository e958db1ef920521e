"""The product's commands: `facessl prepare / enroll / add-person / remove-person / predict /
serve`.

Parsing only; each handler calls one typed function and prints what it did. Heavy modules
(torch, the web server) are imported inside the handlers so `facessl --help` stays fast.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from facessl.config import DEFAULT_FACE_SPACE


def _enroll(args: argparse.Namespace) -> int:
    from facessl.errors import FacesslError
    from facessl.recognition.enroll import enroll, enroll_groups

    started = time.perf_counter()
    if (args.people_dir is None) == (args.groups is None):
        raise FacesslError("pass PEOPLE_DIR (one folder of photos per person) or --groups "
                           "GROUPS_DIR (named groups of `facessl group`): exactly one of them.")
    if args.groups is not None:
        if args.unlabelled:
            raise FacesslError("--groups enrols the album's unnamed faces already; leave "
                               "--unlabelled out.")
        clf, summary = enroll_groups(args.groups, args.out, quiet=args.quiet,
                                     backbone=None if args.backbone == DEFAULT_FACE_SPACE
                                     else args.backbone)
    else:
        clf, summary = enroll(args.people_dir, args.out, unlabelled=args.unlabelled,
                              backbone=args.backbone, quiet=args.quiet)
    print(f"enrolled {len(clf.people)} people from {summary['faces']} "
          f"{'faces' if args.groups else 'photos'}" + _left_out(summary["unused"])
          + (f"; album: {clf.album_['added']} of {clf.album_['faces']} faces added to their "
             f"person" if clf.album_["faces"] else ""))
    if clf.model_.space is None:
        print("facessl: note: no face space came with the backbone, so it was fitted on the "
              f"{summary['faces']} enrolled faces alone; pass --backbone a `facessl pretrain` "
              "checkpoint (even --epochs 0) for one fitted on thousands of unlabelled faces: "
              "it names a small community far better (README).", file=sys.stderr)
    print(_threshold_report(clf))
    print(f"wrote {args.out} in {time.perf_counter() - started:.1f} s")
    return 0


def _left_out(unused: list) -> str:
    """One line per photo left out (on stderr: an unreadable photo in the photo loop's
    words, as every command says it); their count, for the summary."""
    for photo in unused:
        print(f"facessl: note: photo skipped: {photo.record}" if photo.unreadable else
              f"facessl: warning: {photo.why.rstrip('.')} (left out)", file=sys.stderr)
    if not unused:
        return ""
    unreadable = sum(u.unreadable for u in unused)
    return (f" ({len(unused)} photo{'s' * (len(unused) > 1)} left out: {unreadable} could not "
            f"be read, {len(unused) - unreadable} without a face found)")


def _threshold_report(clf) -> str:
    """Where the face space came from and what the unknown-person threshold lets in."""
    calibration, space = clf.calibration_, clf.model_.space
    lines = [f"face space: {'enrolled faces' if space is None else space.source}",
             f"unknown-person threshold {clf.threshold_:.3f}"]
    if calibration.rule == "strangers":
        lines[-1] += (f": lets in {calibration.strangers_accepted:.0%} of "
                      f"{len(space.strangers)} strangers held out of the face space")
    if calibration.genuine_accepted is not None:
        lines[-1] += (f"; on held-out enrolled photos it accepts "
                      f"{calibration.genuine_accepted:.0%} of the right person")
    if calibration.impostors_accepted is not None:
        lines[-1] += f" and {calibration.impostors_accepted:.0%} of the others"
    return "\n".join(lines)


def _add_person(args: argparse.Namespace) -> int:
    from facessl.recognition.enroll import add_person

    started = time.perf_counter()
    clf, unused = add_person(args.model, args.name, args.dir, quiet=args.quiet)
    print(f"added {args.name} to {args.model} ({len(clf.people)} people; "
          f"{_threshold(clf)}) in {time.perf_counter() - started:.1f} s" + _left_out(unused))
    return 0


def _remove_person(args: argparse.Namespace) -> int:
    from facessl.recognition.enroll import remove_person

    clf = remove_person(args.model, args.name)
    print(f"removed {args.name} from {args.model} ({len(clf.people)} people left; "
          f"{_threshold(clf)})")
    return 0


def _threshold(clf) -> str:
    """The threshold in use, and whether it is the user's own (kept) or recalibrated."""
    if clf.threshold_set_by_hand_:
        return (f"kept your threshold {clf.threshold_:.3f}; recalibrated it would be "
                f"{clf.calibration_.threshold:.3f}")
    return f"threshold recalibrated to {clf.threshold_:.3f}"


def _predict(args: argparse.Namespace) -> int:
    """Print the results, and say which photos could not be read; 2 when none could."""
    from facessl.data.photos import photo_files
    from facessl.recognition.classifier import FaceClassifier
    from facessl.recognition.predict import predict_files, write_results

    files = [file for path in args.paths for file in photo_files(path)]  # bad paths first
    clf = FaceClassifier.load(args.model)
    failed = []
    for result in write_results(predict_files(clf, files, args.annotate), args.format,
                                sys.stdout):
        for warning in result.warnings:
            print(f"facessl: warning: {warning}", file=sys.stderr)
        if result.error:
            failed.append(result.error)
    if len(failed) == len(files):  # nothing to show: the run failed
        for error in failed:
            print(f"facessl: error: {error}", file=sys.stderr)
        return 2
    for error in failed:
        print(f"facessl: note: photo skipped: {error}", file=sys.stderr)
    if failed:
        print(f"facessl: {len(failed)} of {len(files)} photos could not be read and were left "
              "out", file=sys.stderr)
    return 0


def _serve(args: argparse.Namespace) -> int:
    from facessl.serve.app import run_server

    run_server(args.model, args.groups, host=args.host, port=args.port,
               token=args.token or os.environ.get("FACESSL_TOKEN") or None,
               no_auth=args.no_auth,
               on_ready=lambda where: print(f"facessl: serving {args.model} at {where} "
                                            "(Ctrl-C stops)", flush=True))
    return 0


def _prepare(args: argparse.Namespace) -> int:
    from facessl.library import default_space
    from facessl.models.checkpoint import META

    chosen = os.environ.get("FACESSL_FACE_SPACE")
    if chosen:
        print(f"FACESSL_FACE_SPACE names the default face space ({chosen}); nothing to build")
        return 0
    folder = default_space.default_folder()
    if (folder / META).is_file():
        print(f"the default face space is ready in {folder}")
        return 0
    started = time.perf_counter()
    folder = default_space.build(args.data, quiet=args.quiet)
    print(f"built the default face space in {folder} in {time.perf_counter() - started:.0f} s")
    return 0


def add_product_commands(sub: argparse._SubParsersAction) -> None:
    """Register the product's subcommands on the `facessl` parser."""
    prepare = sub.add_parser(
        "prepare", help="build the default face space now (once, into the cache)",
        description="Fit the face space that enroll, predict, group, embed and serve use by "
                    "default: ImageNet EfficientNet-Lite0 whitened on the faces of lfw62-v1's "
                    "unlabelled pool. The first command that needs it builds it otherwise, "
                    "saying so before it starts.")
    prepare.add_argument("--data", metavar="PATH",
                         help="LFW (lfw-deepfunneled.tgz or its folder); default: found as "
                              "`facessl experiment` finds it, never downloaded here")
    prepare.add_argument("--quiet", action="store_true", help="no progress bars")
    prepare.set_defaults(func=_prepare)
    enroll = sub.add_parser(
        "enroll", help="build a classifier from folders of photos, one folder per person",
        description="Read PEOPLE_DIR/<name>/* (a few photos each; the largest face of each "
                    "photo is that person), calibrate the unknown-person threshold and write "
                    "the model bundle --out. On first use, with no --backbone and no face "
                    "space in the cache yet, it first builds the default one from the LFW "
                    "copy on this machine, once (about 2 1/2 minutes and 2.7 GB of memory on "
                    "2 cores, a bar per step; `facessl prepare` does it ahead).")
    enroll.add_argument("people_dir", metavar="PEOPLE_DIR", nargs="?",
                        help="one sub-folder per person")
    enroll.add_argument("--groups", metavar="GROUPS_DIR",
                        help="instead of PEOPLE_DIR: the named groups of `facessl group` (its "
                             "other faces are the unlabelled album)")
    enroll.add_argument("--unlabelled", metavar="DIR",
                        help="an album of unlabelled photos: faces confidently matched to "
                             "someone enrolled are added to that person's prototype")
    enroll.add_argument("--backbone", default=DEFAULT_FACE_SPACE, metavar="NAME_OR_CHECKPOINT",
                        help="the network that describes faces: the --out folder of a "
                             "`facessl pretrain` run, or efficientnet_lite0 (ImageNet weights, "
                             "a space fitted on the enrolled faces alone). Default: "
                             "$FACESSL_FACE_SPACE, else ImageNet weights with a face space "
                             "fitted on LFW's unlabelled pool, built once into the cache")
    enroll.add_argument("--out", required=True, metavar="MODEL", help="model bundle folder")
    enroll.add_argument("--quiet", action="store_true", help="no progress bars")
    enroll.set_defaults(func=_enroll)

    add = sub.add_parser("add-person", help="enroll one more person (no retraining)")
    add.add_argument("model", metavar="MODEL", help="model bundle folder (changed in place)")
    add.add_argument("name", metavar="NAME")
    add.add_argument("dir", metavar="DIR", help="folder of photos of NAME")
    add.add_argument("--quiet", action="store_true", help="no progress bars")
    add.set_defaults(func=_add_person)

    remove = sub.add_parser("remove-person", help="forget one enrolled person")
    remove.add_argument("model", metavar="MODEL", help="model bundle folder (changed in place)")
    remove.add_argument("name", metavar="NAME")
    remove.set_defaults(func=_remove_person)

    predict = sub.add_parser(
        "predict", help="name the faces in photos",
        description="Print one line per face: file, box (x,y wxh), name or 'unknown', "
                    "confidence; a photo without a face says so.")
    predict.add_argument("model", metavar="MODEL", help="model bundle folder")
    predict.add_argument("paths", metavar="PATH", nargs="+", help="photos or folders of photos")
    formats = predict.add_mutually_exclusive_group()
    formats.add_argument("--json", dest="format", action="store_const", const="json",
                         help="one JSON document")
    formats.add_argument("--csv", dest="format", action="store_const", const="csv",
                         help="CSV, one row per face")
    predict.set_defaults(format="text")
    predict.add_argument("--annotate", metavar="OUTDIR",
                         help="write copies of the photos with boxes and names drawn")
    predict.set_defaults(func=_predict)

    _add_serve(sub)


def _add_serve(sub: argparse._SubParsersAction) -> None:
    serve = sub.add_parser(
        "serve", help="web app and JSON API (POST /predict, GET /people; /openapi.json lists all)",
        description="Serve a page that names the faces of an uploaded photo and queues the "
                    "unknown ones to be named; with --groups, also the album's groups to name "
                    "and merge, each enrolled into MODEL as it is named.")
    serve.add_argument("model", metavar="MODEL",
                       help="model bundle folder (with --groups: made when the first group is "
                            "named, if it does not exist)")
    serve.add_argument("--groups", metavar="GROUPS_DIR",
                       help="the output of `facessl group`: its groups are shown to be named")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to bind (default 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--token", help="a secret every request must carry (default "
                                       "$FACESSL_TOKEN); needed for any --host but loopback")
    serve.add_argument("--no-auth", action="store_true",
                       help="serve another --host without a token (a network that is yours)")
    serve.set_defaults(func=_serve)
