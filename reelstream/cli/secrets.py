"""`reel secrets`: the deployment's secrets as `NAME=value` lines, for an env file."""

from __future__ import annotations

import argparse

from reelstream.cli.core import Subcommands, add_runtime_flags, settings_from


def cmd_secrets(args: argparse.Namespace) -> int:
    from reelstream.up import ensure_secrets

    # The same file `reel up` keeps (generated once): every role and every later run must
    # share the KEK, or the content keys it wrapped cannot be unwrapped.
    for name, value in ensure_secrets(settings_from(args).data_dir).items():
        print(f"{name}={value}")
    return 0


def register(sub: Subcommands) -> None:
    p = sub.add_parser("secrets", help="print the KEK, token signing keys and edge secret (generated once into "
                                       "DATA_DIR/secrets.json) as NAME=value lines: `reel secrets > infra/.env`")
    add_runtime_flags(p)
    p.set_defaults(fn=cmd_secrets)
