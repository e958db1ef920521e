"""`facessl embed DIR --out OUT`: every face of a folder of photos as one row of an array.

Parsing only; `embed.folder.embed_folder` does the work, in each torchrun process, and
only rank 0 prints what was written.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from facessl.cli.arguments import positive
from facessl.config import BATCH_PHOTOS, DEFAULT_FACE_SPACE


def _embed(args: argparse.Namespace) -> int:
    from facessl.embed.folder import embed_folder

    summary = embed_folder(args.folder, args.out, backbone=args.backbone,
                           batch_size=args.batch_size, quiet=args.quiet)
    if summary is None:  # a torchrun process other than rank 0
        return 0
    if args.json:
        print(json.dumps({"out": str(args.out), **asdict(summary)}, indent=2))
        return 0
    counts = (f"{summary.photos} photos: {summary.faces} faces, {summary.no_face} without a "
              f"face, {summary.unreadable} unreadable (skipped)")
    if summary.already_complete:
        print(f"{args.out} is already complete ({counts}); nothing to do.")
        return 0
    if summary.space is None:
        print("facessl: note: the backbone brings no face space, so the rows are its raw "
              "descriptors scaled to unit length; leave --backbone out for the product's face "
              "space, or pass a `facessl pretrain` checkpoint.", file=sys.stderr)
    new = summary.photos - summary.before
    print(f"embedded {counts}" + (f"; {summary.before} of them were embedded by an earlier "
                                  "run" if summary.before else ""))
    print(f"wrote {args.out}/embeddings.npy ({summary.faces} x {summary.dim} float32), "
          f"faces.csv, photos.csv and embed.json in {summary.seconds:.1f} s "
          f"({new / max(summary.seconds, 1e-9):.1f} photos/s)")
    return 0


def _photos(value: str) -> int:
    return positive(value, "a number of photos")


def add_embed_command(sub: argparse._SubParsersAction) -> None:
    """Register `facessl embed` on the `facessl` parser."""
    embed = sub.add_parser(
        "embed", help="describe every face of a folder of photos: one array row per face",
        description="Find every face in the photos under DIR (sub-folders too) and write OUT: "
                    "embeddings.npy (one float32 row per face), faces.csv (row -> photo and "
                    "box), photos.csv (every photo's status) and embed.json (what made them; "
                    "written last). Stopped or killed, the same command continues where it "
                    "stopped; under `torchrun --nproc_per_node=N -m facessl embed` N processes "
                    "share the photos and write the same files.")
    embed.add_argument("folder", metavar="DIR", help="folder of photos (sub-folders too)")
    embed.add_argument("--out", required=True, metavar="OUT",
                       help="output folder (created; a stopped run's parts are continued)")
    embed.add_argument("--backbone", default=DEFAULT_FACE_SPACE, metavar="NAME_OR_CHECKPOINT",
                       help="the face space (as for enroll; default: $FACESSL_FACE_SPACE, else "
                            "the product's default face space)")
    embed.add_argument("--batch-size", type=_photos, default=BATCH_PHOTOS, metavar="PHOTOS",
                       help="photos described and recorded together: a kill loses at most one "
                            f"batch per process (default {BATCH_PHOTOS})")
    embed.add_argument("--json", action="store_true", help="print the summary as JSON")
    embed.add_argument("--quiet", action="store_true", help="no progress bar")
    embed.set_defaults(func=_embed)
