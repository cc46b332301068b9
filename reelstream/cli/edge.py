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

from reelstream.addresses import check_bind, url_host
from reelstream.cli._argtypes import http_origin, port
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

    topology = local_topology(args.origin_url or f"http://127.0.0.1:{args.base_port - 1}",
                              Path(args.work_dir).resolve(), base_port=args.base_port, bind=_host(args))
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


def _host(args: argparse.Namespace) -> str:
    """--host, else REEL_EDGE_HOST (checked like it: an IP address)."""
    return check_bind(args.host, "--host") if args.host else settings_from(args).edge_host


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

    if args.for_tiers and not args.origin_only:
        print("reel edge up: --for-tiers is a kind of --origin-only; give both", file=sys.stderr)
        return 2
    if args.origin_only and args.origin_url:
        print("reel edge up: --origin-only serves the origin, --origin-url fills from one that runs elsewhere: "
              "give one of them", file=sys.stderr)
        return 2
    if problem := _tier_flags_problem(args):
        print(f"reel edge up: {problem}", file=sys.stderr)
        return 2
    secret = os.environ.get("REEL_EDGE_SECRET")
    if not secret and args.tier:
        print(f"reel edge up: --tier {args.tier} verifies the signed URLs the gateways hand out: set "
              "REEL_EDGE_SECRET to the gateways' (`reel secrets` makes it)", file=sys.stderr)
        return 2
    logging.getLogger("reelstream.edge").setLevel(logging.INFO)
    runtime = Runtime(settings_from(args))
    host = _host(args)
    if not secret and not args.for_tiers:  # an origin for the tiers verifies nothing: no secret
        secret = _secret()
        print("REEL_EDGE_SECRET was unset; generated one for this run (give the gateways the same value):")
        print(f"  export REEL_EDGE_SECRET={secret}")
    if args.origin_only:
        from aiohttp import web

        from reelstream.edge.origin import origin_app

        if args.for_tiers:
            print(f"origin   http://{url_host(host)}:{args.base_port - 1} (for the cache tiers to fill from: plain "
                  "object paths, nothing verified; keep it off the viewers' network)", flush=True)
        else:
            print(f"origin   http://{url_host(host)}:{args.base_port - 1} (no cache tiers: it verifies the signed "
                  "URLs, as the tiers would)", flush=True)
        verify = EdgeSecret(secret) if secret and not args.for_tiers else None
        web.run_app(origin_app(runtime.objects, secret=verify), host=host, port=args.base_port - 1, print=None,
                    access_log=None)
        return 0
    stack = start_edge(runtime.objects, Path(args.work_dir).resolve(), EdgeSecret(secret or _secret()),
                       popular=args.popular or (), base_port=args.base_port, host=host, origin_url=args.origin_url,
                       tier=args.tier, pop_host=args.pop_host, appliance_host=args.appliance_host,
                       status_allow=tuple(args.status_allow or ()))
    print(f"origin    {stack.origin_url}{'' if stack.origin else ' (not started here)'}")
    local = stack.runner.nodes
    if host != local[0].host:
        print(f"listening on {host}; this machine reaches the tiers at {local[0].host}")
    for node in stack.topology.nodes:
        print(f"{node.tier:<10}{node.base_url}  ({node.name}){'' if node in local else ' (not started here)'}")
    if stack.steering_url:
        print(f"steering  {stack.steering_url}/steering")
    if stack.steering_url and not args.tier:  # split, the viewers reach each tier where it is published
        pathways = ",".join(f"{n.name}={n.base_url}"
                            for n in sorted(stack.topology.nodes, key=lambda n: n.tier == "pop"))
        print(f"gateways: export REEL_EDGE_PATHWAYS={pathways} REEL_STEERING_URL={stack.steering_url}")
    sys.stdout.flush()
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


def _tier_flags_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with --tier and the flags that place the other tier, if anything."""
    if not args.tier:
        if args.pop_host or args.appliance_host:
            return "--pop-host and --appliance-host place the other tier of a --tier run; give --tier"
        return None
    if not args.origin_url:
        return f"--tier {args.tier} runs one tier of a chain: give --origin-url (where the PoP fills from)"
    if args.tier == "appliance" and not args.pop_host:
        return "--tier appliance fills from the PoP: give --pop-host (where `reel edge up --tier pop` runs)"
    if args.tier == "pop" and not args.appliance_host:
        return "--tier pop runs the steering server, which probes the appliance: give --appliance-host"
    return None


def register(sub: Subcommands) -> None:
    p = sub.add_parser("edge", help="run the delivery tiers (nginx PoP + ISP appliance) on this machine")
    edge = p.add_subparsers(dest="edge_command", required=True)
    up = edge.add_parser("up", help="start origin, PoP, appliance and steering; ship CMCD logs as events")
    add_runtime_flags(up)
    up.add_argument("--work-dir", default=".reel/edge", help="where configs, caches and logs go")
    up.add_argument("--base-port", type=port, default=18400, help="PoP port; origin -1, steering -2, appliance +1")
    up.add_argument("--host", help="the address origin, nginx tiers and steering listen on (default: "
                                   "REEL_EDGE_HOST, else 127.0.0.1; 0.0.0.0 in a container)")
    up.add_argument("--origin-url", type=http_origin,
                    help="fill the PoP from this origin (http://host:port, e.g. another `reel edge up "
                         "--origin-only`) instead of starting one here")
    up.add_argument("--origin-only", action="store_true",
                    help="serve only the origin (no nginx tiers), to viewers: the signed URLs, verified (what "
                         "`reel up` does without nginx)")
    up.add_argument("--for-tiers", action="store_true",
                    help="with --origin-only: serve the cache tiers elsewhere (their --origin-url) the plain object "
                         "paths they fill from; nothing is verified, so keep it on a private network")
    up.add_argument("--tier", choices=("pop", "appliance"),
                    help="run this tier only, one per machine as a deployment does (needs --origin-url): pop (with "
                         "the steering server), or appliance (filling from the PoP at --pop-host)")
    up.add_argument("--pop-host", help="with --tier: where the PoP runs (a host name or address; same --base-port)")
    up.add_argument("--appliance-host",
                    help="with --tier pop: where the appliance runs, for steering to probe (same --base-port)")
    up.add_argument("--status-allow", nargs="+", metavar="CIDR",
                    help="further addresses that may read the nodes' load (nginx stub_status): where the steering "
                         "server probes from when it runs on another machine")
    up.add_argument("--popular", nargs="*", help="titles the appliance holds (else the popularity processor's list)")
    up.set_defaults(fn=cmd_edge_up)
    config = edge.add_parser("config", help="print a node's generated nginx.conf")
    add_runtime_flags(config)
    config.add_argument("node", help="pop-1 or appliance-isp-a")
    config.add_argument("--work-dir", default=".reel/edge")
    config.add_argument("--base-port", type=port, default=18400)
    config.add_argument("--host", help="the address the node listens on (as `reel edge up --host`)")
    config.add_argument("--origin-url", type=http_origin,
                        help="where the PoP fills from (as `reel edge up --origin-url`)")
    config.set_defaults(fn=cmd_edge_config)
    check = edge.add_parser("check", help="say whether nginx is installed, and how to get it when not")
    check.set_defaults(fn=cmd_edge_check)
