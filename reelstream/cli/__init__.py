"""`reel`: the one command-line entry point. Each feature registers its commands from its own module."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from reelstream.errors import ReelStreamError

# One module per feature, each with ``register(subparsers)``. The core commands come first
# in ``reel --help``; every other module in this package is found, so a feature adds its
# commands by adding its module and nothing else.
FIRST_MODULES = ("reelstream.cli.core", "reelstream.cli.media", "reelstream.cli.package",
                 "reelstream.cli.gateways", "reelstream.cli.edge")


def command_modules() -> list[str]:
    import pkgutil

    found = sorted(f"{__name__}.{m.name}" for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))
    return [*FIRST_MODULES, *(name for name in found if name not in FIRST_MODULES)]


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(prog="reel", description="ReelStream: event-sourced video on demand.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in command_modules():
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from reelstream.httplog import quiet_malformed_requests

    quiet_malformed_requests()  # every server a command runs: scanners' garbage is no ERROR of ours
    args = build_parser().parse_args(argv)
    try:
        return int(args.fn(args))
    except ReelStreamError as e:
        print(f"reel {args.command}: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`reel topics | head`): not an error of ours. Point stdout at
        # /dev/null so the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
