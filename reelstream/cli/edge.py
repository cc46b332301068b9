"""`reel edge`: the delivery tiers on this machine (origin, CDN PoP and ISP appliance on
nginx, steering server), their generated configs, and whether nginx is installed."""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import signal
import sys
import threading
from pathlib import Path

from reelstream.cli._argtypes import port
from reelstream.cli.core import Subcommands, add_runtime_flags, settings_from


def _secret() -> str:
    return os.environ.get("REEL_EDGE_SECRET") or secrets.token_urlsafe(24)


def cmd_edge_check(args: argparse.Namespace) -> int:
    from reelstream.edge.runner import find_nginx

    print(f"nginx: {find_nginx()}")  # NginxMissing says how to install it
    return 0


def cmd_edge_config(args: argparse.Namespace) -> int:
    from reelstream.edge import nginx
    from reelstream.edge.signing import EdgeSecret
    from reelstream.edge.topology import local_topology

    topology = local_topology(f"http://127.0.0.1:{args.base_port - 1}", Path(args.work_dir).resolve(),
                              base_port=args.base_port)
    node = topology.node(args.node)
    if node is None:
        print(f"reel edge config: no node {args.node!r}; nodes: {', '.join(n.name for n in topology.nodes)}",
              file=sys.stderr)
        return 2
    # The running edge's secret, not a fresh one: a config with another secure_link secret
    # would refuse every signed URL the gateways hand out.
    data_dir = settings_from(args).data_dir
    secret = os.environ.get("REEL_EDGE_SECRET") or _kept_secret(data_dir)
    if not secret:
        print(f"reel edge config: REEL_EDGE_SECRET is not set and {data_dir / 'secrets.json'} holds none; set it "
              "to the edge's secret (the gateways' REEL_EDGE_SECRET)", file=sys.stderr)
        return 2
    print(nginx.render_config(topology, node, EdgeSecret(secret)), end="")
    return 0


def _kept_secret(data_dir: Path) -> str | None:
    """The edge secret `reel up` generated into the data dir, if it did."""
    path = data_dir / "secrets.json"
    if not path.is_file():
        return None
    value = json.loads(path.read_text()).get("REEL_EDGE_SECRET")
    return value if isinstance(value, str) else None


def cmd_edge_up(args: argparse.Namespace) -> int:
    from reelstream.edge import start_edge
    from reelstream.edge.signing import EdgeSecret
    from reelstream.processors.popularity.logic import TITLE_POPULARITY
    from reelstream.runtime import Runtime

    logging.getLogger("reelstream.edge").setLevel(logging.INFO)
    runtime = Runtime(settings_from(args))
    secret = os.environ.get("REEL_EDGE_SECRET")
    if not secret:
        secret = _secret()
        print("REEL_EDGE_SECRET was unset; generated one for this run (give the gateways the same value):")
        print(f"  export REEL_EDGE_SECRET={secret}")
    if args.origin_only:
        from aiohttp import web

        from reelstream.edge.origin import origin_app

        print(f"origin   http://{args.host}:{args.base_port - 1} (no cache tiers: it verifies the signed URLs)",
              flush=True)
        # Viewers reach it directly here: it checks the signatures the edges would.
        web.run_app(origin_app(runtime.objects, secret=EdgeSecret(secret)), host=args.host,
                    port=args.base_port - 1, print=None, access_log=None)
        return 0
    stack = start_edge(runtime.objects, Path(args.work_dir).resolve(), EdgeSecret(secret),
                       popular=args.popular or (), base_port=args.base_port)
    print(f"origin    {stack.origin.url}")
    for node in stack.topology.nodes:
        print(f"{node.tier:<10}{node.base_url}  ({node.name})")
    print(f"steering  {stack.steering_url}/steering")
    pathways = ",".join(f"{n.name}={n.base_url}" for n in sorted(stack.topology.nodes, key=lambda n: n.tier == "pop"))
    print(f"gateways: export REEL_EDGE_PATHWAYS={pathways} REEL_STEERING_URL={stack.steering_url}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    runtime.state.ensure_views([TITLE_POPULARITY])
    try:
        while not stop.wait(5):
            stack.ship_logs(lambda e: runtime.publish(e, flush=False))
            runtime.log.flush()
            stack.save_log_offsets()  # only once the events are durable: a crash before ships them again
            # The popularity processor's list (with the --popular titles pinned) to the appliances.
            stack.refresh_popular(runtime.state, pinned=args.popular or ())
    finally:
        stack.stop()
        runtime.close()
    return 0


def register(sub: Subcommands) -> None:
    p = sub.add_parser("edge", help="run the delivery tiers (nginx PoP + ISP appliance) on this machine")
    edge = p.add_subparsers(dest="edge_command", required=True)
    up = edge.add_parser("up", help="start origin, PoP, appliance and steering; ship CMCD logs as events")
    add_runtime_flags(up)
    up.add_argument("--work-dir", default=".reel/edge", help="where configs, caches and logs go")
    up.add_argument("--base-port", type=port, default=18400, help="PoP port; origin -1, steering -2, appliance +1")
    up.add_argument("--host", default="127.0.0.1",
                    help="with --origin-only, the address the origin binds (0.0.0.0 in a container); the nginx "
                         "tiers bind the loopback")
    up.add_argument("--origin-only", action="store_true",
                    help="serve only the origin (no nginx tiers): what `reel up` does without nginx")
    up.add_argument("--popular", nargs="*", help="titles the appliance holds (else the popularity processor's list)")
    up.set_defaults(fn=cmd_edge_up)
    config = edge.add_parser("config", help="print a node's generated nginx.conf")
    add_runtime_flags(config)
    config.add_argument("node", help="pop-1 or appliance-isp-a")
    config.add_argument("--work-dir", default=".reel/edge")
    config.add_argument("--base-port", type=port, default=18400)
    config.set_defaults(fn=cmd_edge_config)
    check = edge.add_parser("check", help="say whether nginx is installed, and how to get it when not")
    check.set_defaults(fn=cmd_edge_check)
