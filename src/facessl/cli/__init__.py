"""The `facessl` command: parsing and dispatch. The work is done by typed functions.

Research commands live in `cli/research.py`, product commands in `cli/product.py`, the
album's in `cli/album.py`, batch feature extraction in `cli/embed.py`; each imports its
heavy modules inside the handlers, so building the parser (and `facessl --help`) imports no
torch. A `FacesslError` (bad input the user can fix) prints one message and exits with
status 2; Ctrl-C exits with 130 after whatever was already written has been kept.
"""

from __future__ import annotations

import argparse
import os
import sys

from facessl.cli.album import add_album_commands
from facessl.cli.embed import add_embed_command
from facessl.cli.product import add_product_commands
from facessl.cli.research import add_research_commands
from facessl.errors import FacesslError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="facessl", description="Personalised face classification with self-supervised "
                                    "learning on Labeled Faces in the Wild.")
    sub = parser.add_subparsers(dest="command", required=True)
    add_research_commands(sub)
    add_product_commands(sub)
    add_album_commands(sub)
    add_embed_command(sub)
    return parser


DISTRIBUTED_COMMANDS = ("pretrain", "experiment", "evaluate", "embed")  # under torchrun


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            _start_distributed(args.command)
        return args.func(args)
    except FacesslError as exc:
        print(f"facessl: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("facessl: interrupted; files already written are complete and kept.",
              file=sys.stderr)
        return 130


def _start_distributed(command: str) -> None:
    """Join torchrun's processes, for a command that shares its work among them."""
    if command not in DISTRIBUTED_COMMANDS:
        raise FacesslError(f"`facessl {command}` runs in one process; under torchrun only "
                           f"{', '.join(DISTRIBUTED_COMMANDS)} share their work. Run it "
                           "without torchrun.")
    from facessl import distributed

    distributed.start()
