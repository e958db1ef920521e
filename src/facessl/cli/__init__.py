"""The `facessl` command: parsing and dispatch. The work is done by typed functions.

Research commands live in `cli/research.py`, product commands in `cli/product.py`, the
album's in `cli/album.py`, batch feature extraction in `cli/embed.py`; each imports its
heavy modules inside the handlers, so building the parser (and `facessl --help`) imports no
torch. A `FacesslError` (bad input the user can fix) prints one message, its arguments
written as flags, and exits with status 2; a `FacesslNote` prints one line; Ctrl-C exits
with 130 after whatever was already written has been kept.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

from facessl.cli.album import add_album_commands
from facessl.cli.embed import add_embed_command
from facessl.cli.product import add_product_commands
from facessl.cli.research import add_research_commands
from facessl.errors import FacesslError, FacesslNote, for_the_command_line


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
    parser = build_parser()
    args = parser.parse_args(argv)
    flags = _flags(parser)
    with warnings.catch_warnings():
        warnings.simplefilter("always", FacesslNote)
        shown = warnings.showwarning

        def show(message, category, *where, **options):
            if not issubclass(category, FacesslNote):
                return shown(message, category, *where, **options)
            print(f"facessl: note: {for_the_command_line(str(message), flags)}",
                  file=sys.stderr)

        warnings.showwarning = show
        try:
            if int(os.environ.get("WORLD_SIZE", "1")) > 1:
                _start_distributed(args.command)
            return args.func(args)
        except FacesslError as exc:
            print(f"facessl: error: {for_the_command_line(str(exc), flags)}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("facessl: interrupted; files already written are complete and kept.",
                  file=sys.stderr)
            return 130


def _flags(parser: argparse.ArgumentParser) -> set[str]:
    """Every long option of every command, without its dashes (`out`, `batch-size`): the
    Python arguments that errors name, as the command line spells them."""
    names = set()
    for action in parser._actions:
        names.update(o[2:] for o in action.option_strings if o.startswith("--"))
        for sub in (action.choices or {}).values() if isinstance(action.choices, dict) else ():
            names |= _flags(sub)
    return names


def _start_distributed(command: str) -> None:
    """Join torchrun's processes, for a command that shares its work among them."""
    if command not in DISTRIBUTED_COMMANDS:
        raise FacesslError(f"`facessl {command}` runs in one process; under torchrun only "
                           f"{', '.join(DISTRIBUTED_COMMANDS)} share their work. Run it "
                           "without torchrun.")
    from facessl import distributed

    distributed.start()
