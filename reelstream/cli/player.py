"""`reel load`: N concurrent simulated players against a running deployment (see
``reelstream/player/load.py`` for what each player does and what is reported)."""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from pathlib import Path
from typing import Any

from reelstream.cli._argtypes import at_least, readable_file
from reelstream.cli.core import Subcommands, add_runtime_flags, settings_from
from reelstream.errors import ConfigError


def read_accounts(path: Path) -> list[Any]:
    """``email password`` per line, the password being the rest of the line (``#``
    comments and blank lines skipped)."""
    from reelstream.player.load import Account

    accounts = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.strip().split(None, 1)
        if len(fields) != 2:
            raise ConfigError(f"--accounts {path}, line {number}: expected 'email password'")
        accounts.append(Account(fields[0], fields[1]))
    if not accounts:
        raise ConfigError(f"--accounts {path}: no accounts in it")
    return accounts


def grant_subscriptions(args: argparse.Namespace, account_ids: list[str]) -> None:
    """Subscribe the new accounts by appending EntitlementGranted to the deployment's log
    (the same events the billing side emits); needs the deployment's log settings."""
    import uuid
    from datetime import UTC, datetime

    from reelstream.events.model import new_event
    from reelstream.runtime import Runtime

    runtime = Runtime(settings_from(args))
    try:
        for account_id in account_ids:
            runtime.publish(new_event("EntitlementGranted", {
                "entitlement_id": f"load-{uuid.uuid4().hex}", "user_id": account_id, "kind": "SUBSCRIPTION",
                "title_id": None, "plan": "standard", "starts_at": datetime.now(UTC), "ends_at": None},
                producer="reel-load"), flush=False)
        runtime.log.flush()
    finally:
        runtime.close()


async def _load(args: argparse.Namespace) -> int:
    import aiohttp

    from reelstream.player import load
    from reelstream.player.client.fetch import Http
    from reelstream.player.traces import load_traces

    traces = load.traces_for(args.players, load_traces(args.traces) if args.traces else [], args.seed)
    config = load.LoadConfig(
        gateway=args.gateway.rstrip("/"), title_id=args.title, players=args.players, traces=traces,
        format=args.format, play_s=args.play_s, ramp_s=args.ramp_s, country=args.country,
        device_type=args.device_type, security_level=args.security_level, edge=args.edge,
        start_at_s=0.0 if args.from_start else None)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as client:
        http = Http(client, {args.country_header: args.country})
        if args.accounts:
            accounts = read_accounts(args.accounts)
        else:
            created = await load.create_accounts(http, config.gateway, args.players, args.country)
            await asyncio.to_thread(grant_subscriptions, args, [account_id for _, account_id in created])
            accounts = [account for account, _ in created]
        devices = await load.sign_in_players(http, config, accounts)
        await load.wait_until_licensed(http, config, devices, args.setup_timeout)
        start = time.perf_counter()
        outcomes = await load.run_load(http, config, devices)
        summary = load.summarize(outcomes, time.perf_counter() - start)
    source = f"traces from {args.traces}" if args.traces else "synthetic traces"
    print(f"reel load: {args.players} players, {args.title} ({args.format}), {source}")
    print(load.render_table(summary))
    for outcome in outcomes:
        if outcome.error:
            print(f"  player {outcome.player} ({outcome.trace}): {outcome.error}")
    print(load.json_line(summary), flush=True)
    return 1 if summary.failed else 0


def cmd_load(args: argparse.Namespace) -> int:
    if args.traces and not args.traces.is_dir():
        raise ConfigError(f"--traces {args.traces}: not a folder of trace files")
    return asyncio.run(_load(args))


def register(sub: Subcommands) -> None:
    p = sub.add_parser(
        "load", help="N concurrent simulated players against a running deployment",
        description="Each player signs in, reads the resume point, opens a session with the manifest, gets a "
                    "license, fetches, decrypts and checks segments from the edge and posts heartbeats, on a "
                    "virtual clock shaped by its own network trace. Prints a table and one JSON line; exits 1 "
                    "if any session failed. Without --accounts, one account per player is created and "
                    "subscribed through the deployment's event log (give the same runtime flags as the "
                    "deployment: --data-dir, or --kafka --cassandra).")
    add_runtime_flags(p)
    p.add_argument("--gateway", default=os.environ.get("REEL_GATEWAY_URL", "http://127.0.0.1:8000"),
                   help="the gateways' base URL (default $REEL_GATEWAY_URL or http://127.0.0.1:8000)")
    p.add_argument("--edge", help="send media requests to this edge tier (scheme://host:port) instead of the "
                                  "manifest's")
    p.add_argument("--title", required=True, help="the title every player plays")
    p.add_argument("--players", type=at_least(1), default=10, help="concurrent players (default 10)")
    p.add_argument("--format", choices=["dash", "hls", "mixed"], default="dash")
    p.add_argument("--traces", type=Path, help="a folder of throughput traces ('time_s mbps' lines, e.g. "
                                               "../shared/abr/traces/fcc); default: synthetic traces")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic traces")
    p.add_argument("--accounts", type=readable_file, help="file of 'email password' lines (the password is the rest of the line) to sign "
                        "in with, round robin; mind the deployment's streams per account")
    p.add_argument("--play-s", type=float, help="each viewer leaves after this much play time (default: the end)")
    p.add_argument("--from-start", action="store_true",
                   help="start every player at 0 instead of the account's resume point")
    p.add_argument("--ramp-s", type=float, default=0.0, help="spread the starts over this many real seconds")
    p.add_argument("--country", default="US", help="the viewers' country (sent in --country-header)")
    p.add_argument("--country-header", default=os.environ.get("REEL_COUNTRY_HEADER", "X-Client-Country"))
    p.add_argument("--device-type", default="browser")
    p.add_argument("--security-level", default="software", choices=["software", "hardware"])
    p.add_argument("--setup-timeout", type=float, default=60.0,
                   help="seconds to wait for new accounts' subscriptions to reach the license server")
    p.set_defaults(fn=cmd_load)
