"""`reel gateway`: run the HTTP gateways (auth, licenses, manifests, playback, downloads)."""

from __future__ import annotations

import argparse
import errno
import os

from reelstream.cli.core import Subcommands, add_runtime_flags, settings_from
from reelstream.errors import ConfigError


def cmd_gateway(args: argparse.Namespace) -> int:
    from aiohttp import web

    from reelstream.gateways.app import GATEWAYS, create_app
    from reelstream.gateways.settings import load_gateway_settings
    from reelstream.keys.config import key_service
    from reelstream.runtime import Runtime

    gateways = args.only or tuple(GATEWAYS)
    settings = load_gateway_settings()  # fails at start, naming the variable, before any port opens
    runtime = Runtime(settings_from(args))
    keys = key_service(runtime) if "licenses" in gateways else None
    app = create_app(runtime, settings, keys, gateways=gateways, close_runtime=True)
    if args.web:
        from reelstream.web.app import web_app

        app.add_subapp("/web", web_app(runtime))
    print(f"gateways {', '.join(gateways)} on http://{args.host}:{args.port} "
          f"(OpenAPI: /<gateway>/openapi.json); log {runtime.settings.log_url}, state {runtime.settings.state_url}",
          flush=True)
    try:
        web.run_app(app, host=args.host, port=args.port, access_log=None, print=None,
                    reuse_port=args.reuse_port)
    except OSError as e:
        if e.errno != errno.EADDRINUSE:
            raise
        raise ConfigError(f"port {args.port} on {args.host} is in use: another program (or another `reel gateway` "
                          "without --reuse-port) serves there; stop it or pass --port PORT") from e
    return 0


def _port(text: str) -> int:
    # The default comes from REEL_GATEWAY_PORT, which argparse parses like a flag's value
    # (only for this command): a bad value is refused naming both places it may come from.
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} (--port or REEL_GATEWAY_PORT): a port is 1..65535")
    return int(text)


def _gateways(text: str) -> tuple[str, ...]:
    from reelstream.gateways.app import GATEWAYS

    gateways = tuple(g.strip() for g in text.split(",") if g.strip())
    unknown = [g for g in gateways if g not in GATEWAYS]
    if unknown or not gateways:
        raise argparse.ArgumentTypeError(f"{', '.join(unknown) or repr(text)}: use a comma list of "
                                         f"{', '.join(GATEWAYS)}")
    return gateways


def register(sub: Subcommands) -> None:
    p = sub.add_parser("gateway", help="run the HTTP gateways (licenses, manifests, playback, downloads, auth)",
                       description="Needs REEL_GATEWAY_SIGNING_KEYS, REEL_EDGE_SECRET and (for licenses) REEL_KEK.")
    add_runtime_flags(p)
    p.add_argument("--host", default=os.environ.get("REEL_GATEWAY_HOST", "127.0.0.1"))
    p.add_argument("--port", type=_port, default=os.environ.get("REEL_GATEWAY_PORT", "8000"))
    p.add_argument("--web", action="store_true", help="also serve the web player page at /web/")
    p.add_argument("--only", type=_gateways, help="comma-separated subset, e.g. licenses,manifests (default: all)")
    p.add_argument("--reuse-port", action="store_true",
                   help="SO_REUSEPORT: run one process per core on the same port")
    p.set_defaults(fn=cmd_gateway)
