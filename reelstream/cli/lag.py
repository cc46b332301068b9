"""`reel lag`: how far each processor and worker group is behind the log."""

from __future__ import annotations

import argparse
import json

from reelstream.cli._argtypes import at_least
from reelstream.cli.core import Subcommands, add_runtime_flags, settings_from
from reelstream.runtime import Runtime


def cmd_lag(args: argparse.Namespace) -> int:
    from reelstream.processors.lag import consumer_groups, lag_of
    from reelstream.processors.registry import all_processors

    runtime = Runtime(settings_from(args))
    try:
        rows = [row for group in consumer_groups(all_processors(), runtime.settings.group_prefix)
                for row in lag_of(group, runtime.log)]
    finally:
        runtime.close()
    if args.json:
        print(json.dumps([{"consumer": r.consumer, "group": r.group, "topic": r.topic, "lag": r.lag,
                           "partitions_behind": r.partitions_behind} for r in rows]))
    else:
        print(f"{'consumer':<34}{'topic':<30}{'lag':>10}  partitions behind")
        for r in rows:
            lag = "not running" if r.lag is None else str(r.lag)
            print(f"{r.consumer:<34}{r.topic:<30}{lag:>10}  {r.partitions_behind if r.lag is not None else ''}")
    over = [r for r in rows if args.max is not None and r.lag is not None and r.lag > args.max]
    return 1 if over else 0


def register(sub: Subcommands) -> None:
    p = sub.add_parser("lag", help="how far each processor and worker group is behind the log (records to read)")
    add_runtime_flags(p)
    p.add_argument("--json", action="store_true", help="one JSON array instead of the table")
    p.add_argument("--max", type=at_least(0), help="exit 1 when any group that runs is more than this many "
                                                    "records behind (for a monitoring check)")
    p.set_defaults(fn=cmd_lag)
