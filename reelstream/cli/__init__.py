"""`reel`: the one command-line entry point. Each feature registers its commands from its own module."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence

from reelstream.errors import ReelStreamError

# One module per feature, each with ``register(subparsers)``.
COMMAND_MODULES = ("reelstream.cli.core", "reelstream.cli.media", "reelstream.cli.package",
                   "reelstream.cli.gateways", "reelstream.cli.edge")


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(prog="reel", description="ReelStream: event-sourced video on demand.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return int(args.fn(args))
    except ReelStreamError as e:
        print(f"reel {args.command}: {e}", file=sys.stderr)
        return 2
