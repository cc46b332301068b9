"""Argument types that refuse what a command cannot use, at parse time, naming the range."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def at_least(minimum: int) -> Callable[[str], int]:
    """A whole number of ``minimum`` or more (a count of processes, players, threads)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is under {minimum}, the least this takes")
        return value

    parse.__name__ = f"whole number >= {minimum}"  # what argparse names in its own errors
    return parse


def port(text: str) -> int:
    """A TCP port, 1..65535."""
    value = at_least(1)(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"{value}: a port is 1..65535")
    return value
