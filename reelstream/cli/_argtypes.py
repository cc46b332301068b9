"""Argument types that refuse what a command cannot use, at parse time, naming the range."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path


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


def http_origin(text: str) -> str:
    """``http://host:port`` and nothing after it: what nginx's ``upstream`` can fill from."""
    from urllib.parse import urlsplit

    parts = urlsplit(text)
    try:
        has_port = parts.port is not None
    except ValueError:
        has_port = False
    if parts.scheme != "http" or not parts.hostname or not has_port or parts.path.strip("/") or parts.query:
        raise argparse.ArgumentTypeError(f"{text!r}: give http://host:port (no path), e.g. http://origin:18399")
    return f"http://{parts.netloc}"


def readable_file(text: str) -> Path:
    """A file this process can read (a list of accounts, a metadata sidecar)."""
    path = Path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{text}: {'a folder' if path.is_dir() else 'no such file'}")
    if not os.access(path, os.R_OK):
        raise argparse.ArgumentTypeError(f"{text}: not readable by this user")
    return path
