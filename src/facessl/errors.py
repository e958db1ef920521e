"""The one exception type that reaches a person.

Anything raised as `FacesslError` is bad input or a bad environment that the user can fix;
the CLI prints its message (what was wrong, what was given, what to do) without a
traceback. Every other exception is a bug and keeps its traceback.
"""


class FacesslError(Exception):
    """A problem the user can fix; the message says what was wrong and what to do."""
