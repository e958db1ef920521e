"""The `facessl` command. Arguments are parsed here only; the work is done by typed functions.

A `FacesslError` (bad input the user can fix) prints one message and exits with status 2;
Ctrl-C exits with 130 after whatever was already written has been kept.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from facessl.errors import FacesslError


def _shots(value: str) -> int | None:
    if value == "all":
        return None
    try:
        shots = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'all', got {value!r}") from None
    if shots < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1, got {shots}")
    return shots


def _experiment(args: argparse.Namespace) -> int:
    from facessl.config import check_arms, preset
    from facessl.experiment import run_experiment

    config = preset(args.preset)
    check_arms(args.arms)
    config.split, config.shots, config.seeds, config.arms = args.split, args.shots, args.seeds, args.arms
    config.data = args.data
    if args.epochs is not None:
        for stage in (config.finetune, config.scratch, config.transfer):
            stage.epochs = args.epochs
    if args.pretext_epochs is not None:
        config.pretext.epochs = args.pretext_epochs
    out = Path(args.out or f"runs/experiment-{time.strftime('%Y%m%d-%H%M%S')}")
    started = time.perf_counter()
    results = run_experiment(config, out, quiet=args.quiet)
    if not args.quiet:
        for arm, s in results["summary"].items():
            mean, std = s["final_test_acc"]
            print(f"{arm:>9}: final test accuracy {100 * mean:.1f} ± {100 * std:.1f} %")
        print(f"wrote {out}/report.md, results.json, curves.png"
              f"{', clusters.png' if 'ssl' in config.arms else ''} "
              f"in {time.perf_counter() - started:.0f} s")
    return 0


def _data_prepare(args: argparse.Namespace) -> int:
    from facessl.data import cache, lfw

    source = lfw.locate(args.data)
    prep = cache.Preprocessing(crop=args.crop, size=args.size, grayscale=args.grayscale)
    built = cache.load_or_build(source, prep)
    print(f"{len(built.paths)} images from {source.path} cached at {built.folder}"
          + (f" ({len(built.truncated)} truncated: {', '.join(built.truncated)})"
             if built.truncated else ""))
    return 0


def _data_manifest(args: argparse.Namespace) -> int:
    from facessl.data import lfw
    from facessl.data.splits import generate_manifest
    from facessl.files import write_json

    source = lfw.locate(args.folder)
    paths = [rel for rel, _ in source.iter_images()]
    manifest = generate_manifest(paths, name=args.name or Path(args.out).stem,
                                 source=source.name, min_images=args.min_images)
    write_json(Path(args.out), manifest)
    print(f"wrote {args.out}: {len(manifest['community'])} people in the community, "
          f"{len(manifest['unlabelled'])} unlabelled images")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from facessl.config import ARMS, PRESETS

    parser = argparse.ArgumentParser(
        prog="facessl", description="Personalised face classification with self-supervised "
                                    "learning on Labeled Faces in the Wild.")
    sub = parser.add_subparsers(dest="command", required=True)

    exp = sub.add_parser("experiment", help="SSL vs scratch vs transfer learning, over seeds",
                         description="Run the comparison and write report.md, results.json, "
                                     "curves.png and clusters.png to --out.")
    exp.add_argument("--split", default="lfw10-seed-v1",
                     help="built-in split name (lfw10-seed-v1, lfw62-v1) or a manifest .json")
    exp.add_argument("--shots", type=_shots, default=None,
                     help="labelled images per person (first k of each train list), or 'all'")
    exp.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    exp.add_argument("--arms", nargs="+", default=list(ARMS), help=f"any of {' '.join(ARMS)}")
    exp.add_argument("--epochs", type=int, default=None,
                     help="epochs on the labelled set for every arm (default: the preset's)")
    exp.add_argument("--pretext-epochs", type=int, default=None,
                     help="epochs of the k-means pretext task (default: the preset's)")
    exp.add_argument("--preset", default="cpu", choices=list(PRESETS),
                     help="cpu: measured to finish in minutes on 2 cores; original: the "
                          "original design's budget (hours on a CPU, for a GPU)")
    exp.add_argument("--data", help="LFW archive or folder (default: search, then download)")
    exp.add_argument("--out", help="output folder (default runs/experiment-<time>)")
    exp.add_argument("--quiet", action="store_true", help="no progress output")
    exp.set_defaults(func=_experiment)

    data = sub.add_parser("data", help="prepare data: decode LFW once, make split manifests")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    prep = data_sub.add_parser("prepare", help="decode every image once into the cache")
    prep.add_argument("--data", help="LFW archive or folder (default: search, then download)")
    prep.add_argument("--crop", type=int, default=128, help="central crop side, LFW pixels")
    prep.add_argument("--size", type=int, default=32, help="stored side in pixels")
    prep.add_argument("--grayscale", action="store_true")
    prep.set_defaults(func=_data_prepare)
    man = data_sub.add_parser("manifest", help="make a split manifest for a folder of people")
    man.add_argument("folder", help="folder of <Person>/<image> sub-folders, or an LFW archive")
    man.add_argument("--out", required=True, help="manifest .json to write")
    man.add_argument("--name", help="split name (default: the file's stem)")
    man.add_argument("--min-images", type=int, default=10,
                     help="people with at least this many images form the community")
    man.set_defaults(func=_data_manifest)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except FacesslError as exc:
        print(f"facessl: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("facessl: interrupted; files already written are complete and kept.",
              file=sys.stderr)
        return 130
