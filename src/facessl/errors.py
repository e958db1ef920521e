"""The exceptions and notes that reach a person.

Anything raised as `FacesslError` is bad input or a bad environment the caller can fix; its
message says what was wrong, what was given and what to do, in terms of the Python
arguments (`out`, `backbone`). The CLI prints it without a traceback, with each argument
written as its flag (`--out`). Every other exception is a bug and keeps its traceback.
`FacesslNote` is a warning worth a line (an old file read the old way); the CLI prints it as
`facessl: note: ...`, a Python caller filters it like any warning.
"""

import re


class FacesslError(Exception):
    """A problem the caller can fix; the message says what was wrong and what to do."""


class InputError(FacesslError, ValueError):
    """An argument the function cannot use (a bad name, path, number or array)."""


class DataError(FacesslError):
    """A file or folder facessl wrote, or was given to read, that is missing or damaged."""


class NotFittedError(FacesslError):
    """A model used before it was fitted or loaded."""


class FacesslNote(UserWarning):
    """Something done differently from what was asked, or read the old way."""


ARGUMENT = re.compile(r"`([a-z][a-z0-9_]*)`")


def for_the_command_line(message: str, flags: set[str]) -> str:
    """`message` with each `argument` that the command has as a flag written `--argument`."""
    def flag(match: re.Match) -> str:
        name = match[1].replace("_", "-")
        return f"--{name}" if name in flags else match[0]
    return ARGUMENT.sub(flag, message)
