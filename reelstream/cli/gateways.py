"""`reel gateway`: run the HTTP gateways (auth, licenses, manifests, playback, downloads);
`reel ingest-server`: the ingest gateway for studio tools."""

from __future__ import annotations

import argparse
import errno
import os
from pathlib import Path
from typing import Any

from reelstream.cli.core import Subcommands, add_runtime_flags, settings_from
from reelstream.errors import ConfigError


def cmd_gateway(args: argparse.Namespace) -> int:
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
    _serve(app, args, "`reel gateway` without --reuse-port")
    return 0


def _serve(app: Any, args: argparse.Namespace, peer: str) -> None:
    from aiohttp import web

    try:
        web.run_app(app, host=args.host, port=args.port, access_log=None, print=None,
                    reuse_port=getattr(args, "reuse_port", False))
    except OSError as e:
        if e.errno != errno.EADDRINUSE:
            raise
        raise ConfigError(f"port {args.port} on {args.host} is in use: another program (or another {peer}) "
                          "serves there; stop it or pass --port PORT") from e


def cmd_ingest_server(args: argparse.Namespace) -> int:
    from reelstream.gateways.ingest import create_app, ingest_tokens
    from reelstream.media.transcode.ladder import DEFAULT_LADDER, load_ladder
    from reelstream.runtime import Runtime

    tokens = ingest_tokens(os.environ.get("REEL_INGEST_TOKENS", ""))  # before any port opens
    ladder = load_ladder(args.ladder) if args.ladder else DEFAULT_LADDER
    runtime = Runtime(settings_from(args))
    staging = args.staging or Path(runtime.settings.data_dir) / "ingest-staging"
    app = create_app(runtime, staging, tokens, ladder)
    print(f"ingest gateway on http://{args.host}:{args.port} (OpenAPI: /openapi.json), staging {staging}; "
          f"log {runtime.settings.log_url}, objects {runtime.settings.objects_url}", flush=True)
    _serve(app, args, "`reel ingest-server`")
    return 0


def _port(variable: str) -> Any:
    """A port argument type whose default comes from ``variable``, which argparse parses like a
    flag's value: a bad value is refused naming both places it may come from."""
    def port(text: str) -> int:
        if not text.isdigit() or not 0 < int(text) < 65536:
            raise argparse.ArgumentTypeError(f"{text!r} (--port or {variable}): a port is 1..65535")
        return int(text)
    return port


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
    p.add_argument("--port", type=_port("REEL_GATEWAY_PORT"), default=os.environ.get("REEL_GATEWAY_PORT", "8000"))
    p.add_argument("--web", action="store_true", help="also serve the web player page at /web/")
    p.add_argument("--only", type=_gateways, help="comma-separated subset, e.g. licenses,manifests (default: all)")
    p.add_argument("--reuse-port", action="store_true",
                   help="SO_REUSEPORT: run one process per core on the same port")
    p.set_defaults(fn=cmd_gateway)

    ingest = sub.add_parser("ingest-server", help="serve the ingest endpoint for studio tools (resumable upload, "
                                                  "then ingest)",
                            description="Needs REEL_INGEST_TOKENS: the bearer tokens studio tools send "
                                        "(`reel secrets` prints a generated one).")
    add_runtime_flags(ingest)
    ingest.add_argument("--host", default=os.environ.get("REEL_INGEST_HOST", "127.0.0.1"))
    ingest.add_argument("--port", type=_port("REEL_INGEST_PORT"),
                        default=os.environ.get("REEL_INGEST_PORT", "8090"))
    ingest.add_argument("--staging", type=Path, help="where uploads are staged (default DATA_DIR/ingest-staging)")
    ingest.add_argument("--ladder", type=Path, help="JSON ladder (default: 10 rungs, 240p/400k .. 2160p HDR/15M)")
    ingest.set_defaults(fn=cmd_ingest_server)
