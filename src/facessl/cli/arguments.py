"""Option types the commands share: counts, shot numbers, key=value options."""

from __future__ import annotations

import argparse
import json

from facessl.errors import InputError

DATA_HELP = "LFW archive or folder (default: $FACESSL_DATA, ../shared/data, then download)"


def positive(value: str, expected: str = "a number") -> int:
    """An option's count: a whole number of at least 1."""
    try:
        count = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {value!r}") from None
    if count < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1, got {count}")
    return count


def shots(value: str) -> int | None:
    """--shots: a positive number, or 'all' (None)."""
    return None if value == "all" else positive(value, "a number or 'all'")


def options(pairs: list[str] | None) -> dict:
    """--option key=value pairs; values parsed as JSON when they can be (numbers, lists)."""
    parsed = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InputError(f"--option expects key=value, got {pair!r}")
        try:
            parsed[key] = json.loads(value)
        except json.JSONDecodeError:
            parsed[key] = value
    return parsed
