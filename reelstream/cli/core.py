"""The foundation's commands: up, processors, topics, tail, emit, replay."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import signal
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from reelstream.cli._argtypes import at_least, port
from reelstream.config import Settings, load_settings
from reelstream.errors import (
    EventLogError,
    ReelStreamError,
    SchemaRegistryUnavailable,
    StateStoreError,
)
from reelstream.events.topics import SECONDARY_TOPICS, TOPICS, topic
from reelstream.runtime import Runtime

if TYPE_CHECKING:
    from reelstream.processors.base import Processor
    from reelstream.stores.ports import StateStore

# A string: argparse's class is generic only in its type stubs, so it cannot be subscripted at run time.
Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def settings_from(args: argparse.Namespace) -> Settings:
    env = dict(os.environ)
    if args.data_dir:
        env["REEL_DATA_DIR"] = str(args.data_dir)
    return load_settings(env=env, config_file=args.config).with_servers(
        kafka=args.kafka, cassandra=args.cassandra, s3=args.s3)


def add_runtime_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="TOML config file (settings named as in the README)")
    p.add_argument("--data-dir", type=Path, help="embedded runtime's folder (default .reel or REEL_DATA_DIR)")
    p.add_argument("--kafka", action="store_true", help="use the Kafka broker (REEL_KAFKA_BOOTSTRAP) as the log")
    p.add_argument("--cassandra", action="store_true", help="use Cassandra (REEL_CASSANDRA_HOSTS/PORT) for state")
    p.add_argument("--s3", action="store_true", help="use the S3 server (REEL_S3_ENDPOINT) for objects")


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


# --------------------------------------------------------------------------- commands


def cmd_topics(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    if args.create:
        from reelstream.stores.factory import open_objects

        runtime = Runtime(settings)
        runtime.log.ensure_topics(SECONDARY_TOPICS)  # opening the log creates the catalog's topics
        _ = runtime.state  # and its views
        open_objects(settings.objects_url, settings, create_bucket=True)  # the setup step makes the bucket
        print(f"topics, views and the object store ensured on {runtime.settings.log_url}, "
              f"{runtime.settings.state_url}, {runtime.settings.objects_url}")
        runtime.close()
    if settings.namespace:
        print(f"namespace {settings.namespace}: on the log every topic below is named "
              f"'{settings.namespace}.<topic>' and every consumer group '{settings.namespace}.<group>'\n")
    for t in TOPICS + SECONDARY_TOPICS:
        retention = "kept forever" if t.retention_ms < 0 else f"deleted after {t.retention_ms // 86_400_000} days"
        policy = "compacted (latest per key)" if t.cleanup.value == "compact" else retention
        print(f"{t.name}\n  key: {t.key_field}   partitions: {t.partitions}   {policy}\n"
              f"  events: {', '.join(sorted(t.event_types))}\n  {t.doc}\n")
    return 0


def cmd_tail(args: argparse.Namespace) -> int:
    runtime = Runtime(settings_from(args))
    topic(args.topic)
    reader = runtime.log.consumer([args.topic], group_id=None)
    if not args.from_beginning:
        for t, p in reader.assignment():
            reader.seek(t, p, runtime.log.end_offsets(t)[p])
    shown = 0
    try:
        while args.limit is None or shown < args.limit:
            records = reader.poll(timeout=1.0)
            if not records and args.exit_at_end:
                break
            for r in records:
                try:
                    event = runtime.codec.decode(r.value)
                    body = {"type": event.type, **event.header.to_avro(), **event.data}
                except ReelStreamError as e:
                    body = {"undecodable": str(e)}
                if args.json:  # where it is on the log, for a consumer that joins or resumes by position
                    body["log"] = {"topic": r.topic, "partition": r.partition, "offset": r.offset,
                                   "key": r.key.decode(errors="replace") if r.key is not None else None}
                line = json.dumps(body, default=_json_default)
                print(f"{r.topic}/{r.partition}@{r.offset} {line}" if not args.json else line, flush=True)
                shown += 1
                if args.limit is not None and shown >= args.limit:
                    break
    except KeyboardInterrupt:
        pass
    finally:
        reader.close()
    return 0


def cmd_emit(args: argparse.Namespace) -> int:
    from reelstream.events.model import new_event

    runtime = Runtime(settings_from(args))
    try:
        data = json.loads(args.data if args.data != "-" else sys.stdin.read())
    except json.JSONDecodeError as e:
        print(f"reel emit: the payload is not JSON ({e}); nothing was written", file=sys.stderr)
        return 2
    if not isinstance(data, dict):
        print(f"reel emit: the payload must be a JSON object of the event's fields, not {type(data).__name__}; "
              "nothing was written", file=sys.stderr)
        return 2
    event = new_event(args.event_type, data, producer=runtime.settings.producer)
    runtime.publish(event)
    print(event.event_id)
    return 0


def cmd_processors(args: argparse.Namespace) -> int:
    from reelstream.processors.registry import all_processors

    settings = settings_from(args)
    if args.runtime == "faust":
        from reelstream.processors.app import run_faust

        return run_faust(settings, all_processors())
    return asyncio.run(_run_embedded(settings))


async def _run_embedded(settings: Settings, banner: str | None = None) -> int:
    from reelstream.processors.embedded import run_embedded
    from reelstream.processors.registry import all_processors

    runtime = Runtime(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    processors = all_processors()
    print(banner or f"processors {', '.join(p.name for p in processors)} running on "
                    f"{settings.log_url} -> {settings.state_url}; Ctrl-C stops", flush=True)
    try:
        await run_embedded(processors, runtime.log, runtime.state, runtime.codec, settings.producer, stop,
                           settings.group_prefix)
    finally:
        runtime.close()
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    from reelstream.up import run_up

    return run_up(settings_from(args), sample=not args.no_sample, host=args.host, port=args.port,
                  transcode_processes=args.transcode_processes, edge_port=args.edge_port)


def cmd_replay(args: argparse.Namespace) -> int:
    from reelstream.processors.registry import PROCESSORS
    from reelstream.processors.replay import (
        ReplayRefused,
        fresh_suffix,
        rebuild,
        refuse_live_target,
        removal_hint,
    )
    from reelstream.stores.factory import open_state, replay_state_url

    if args.processor not in PROCESSORS:
        print(f"reel replay: unknown processor {args.processor!r}; choose from {', '.join(PROCESSORS)}",
              file=sys.stderr)
        return 2
    processor = PROCESSORS[args.processor]()
    runtime = Runtime(settings_from(args))
    if args.resume and not args.into:
        print("reel replay: --resume needs --into URL, the store the interrupted rebuild wrote "
              "(its command printed it)", file=sys.stderr)
        return 2
    if args.into:
        refuse_live_target(args.into, runtime.settings.state_url)
    into_url = args.into or replay_state_url(runtime.settings.state_url, fresh_suffix())
    fresh = open_state(into_url)

    started, shown = time.monotonic(), [0.0]

    def progress(done: int, total: int) -> None:
        # A line of its own (a warning about a skipped record then starts on a new line),
        # at most one a second on a long log.
        now = time.monotonic()
        if now - shown[0] >= 1.0 or done >= total:
            shown[0] = now
            share = f" ({100 * done // total} %)" if total else ""
            print(f"  replayed {done}/{total} records{share}, {now - started:.0f}s", file=sys.stderr, flush=True)

    refused = verified = False
    try:
        report = rebuild(processor, runtime.log, fresh, runtime.codec, progress, overwrite=args.force,
                         resume=args.resume)
        resumed = f" (resumed after {report.resumed_at})" if args.resume else ""
        skipped = (f"; {report.skipped} skipped, as the live processor dead-letters them (logged above)"
                   if report.skipped else "")
        print(f"rebuilt {processor.name} from {report.records} records{resumed} in {report.seconds:.1f}s "
              f"into {into_url}: " + ", ".join(f"{name} {n} rows" for name, n in report.rows.items()) + skipped)
        if not args.verify:
            return 0
        verified = _verify_replay(processor, runtime, fresh, args.timeout)
        return 0 if verified else 1
    except ReplayRefused:
        refused = True  # raised before anything was written: the target is as it was
        raise
    except (KeyboardInterrupt, StateStoreError, EventLogError, SchemaRegistryUnavailable) as e:
        # Ctrl-C, or a store, log or registry that failed: what was rebuilt is kept, and the
        # rebuild can go on from the last batch it wrote.
        again = "" if args.resume else f" --into {shlex.quote(into_url)} --resume"
        print(f"\n{'interrupted' if isinstance(e, KeyboardInterrupt) else 'stopped'}; to go on from where it "
              f"stopped, run the same command{again or ' again'}", file=sys.stderr)
        if isinstance(e, KeyboardInterrupt):
            return 130
        raise  # reel's handler prints the failure
    finally:
        runtime.close()
        # A store replay made itself is removed once it has served (it agrees with the live
        # state); a rebuild that is wanted, or a verify that failed, leaves it for the operator.
        if verified and not args.into and not args.keep:
            fresh.drop()
            print(f"removed the rebuilt store {into_url} (--keep keeps it)")
        else:
            fresh.close()
            if not refused:
                print(f"the rebuilt state is kept in {into_url}; remove it with: {removal_hint(into_url)}")


def _verify_replay(processor: Processor, runtime: Runtime, rebuilt: StateStore, timeout: float) -> bool:
    from reelstream.processors.replay import diff_states, wait_until_caught_up

    wait_until_caught_up(processor, runtime.log, timeout=timeout, group_prefix=runtime.settings.group_prefix)
    problems = diff_states(processor, runtime.state, rebuilt)
    if problems:
        print(f"VERIFY FAILED: {len(problems)} differences", file=sys.stderr)
        for line in problems[:20]:
            print("  " + line, file=sys.stderr)
        return False
    print(f"verified: rebuilt state equals the live state of {processor.name}")
    return True


def register(sub: Subcommands) -> None:
    up = sub.add_parser("up", help="run everything on this machine (embedded by default)",
                        description="Starts processors, workers and gateways, ingests the sample title "
                                    "and prints the URL of the page that plays it.")
    add_runtime_flags(up)
    up.add_argument("--no-sample", action="store_true", help="do not ingest the sample title")
    up.add_argument("--host", default="127.0.0.1", help="address the gateways listen on")
    up.add_argument("--port", type=port, default=8000, help="port of the gateways and the web page")
    up.add_argument("--edge-port", type=port, default=18400,
                    help="CDN PoP port; origin -1, steering -2, ISP appliance +1")
    up.add_argument("--transcode-processes", type=at_least(1), help="transcode worker processes (default: one per core)")
    up.set_defaults(fn=cmd_up)

    procs = sub.add_parser("processors", help="run the stream processors only")
    add_runtime_flags(procs)
    procs.add_argument("--runtime", choices=("embedded", "faust"), default="embedded",
                       help="embedded asyncio host, or Faust agents (needs --kafka)")
    procs.set_defaults(fn=cmd_processors)

    topics = sub.add_parser("topics", help="list the topic catalog (and create the topics)")
    add_runtime_flags(topics)
    topics.add_argument("--create", action="store_true", help="create missing topics in the log")
    topics.set_defaults(fn=cmd_topics)

    tail = sub.add_parser("tail", help="print a topic's events, decoded")
    add_runtime_flags(tail)
    tail.add_argument("topic", help="topic name, e.g. reel.playback")
    tail.add_argument("--from-beginning", action="store_true", help="start at the oldest record")
    tail.add_argument("--limit", type=at_least(1), help="stop after N events")
    tail.add_argument("--exit-at-end", action="store_true", help="stop when no more records arrive")
    tail.add_argument("--json", action="store_true", help="one JSON object per line, nothing else")
    tail.set_defaults(fn=cmd_tail)

    emit = sub.add_parser("emit", help="validate and append one event (JSON payload without the header)")
    add_runtime_flags(emit)
    emit.add_argument("event_type", help="e.g. EntitlementGranted")
    emit.add_argument("data", help="JSON payload, or - for stdin")
    emit.set_defaults(fn=cmd_emit)

    replay = sub.add_parser("replay", help="rebuild a processor's state from the start of the log")
    add_runtime_flags(replay)
    replay.add_argument("processor", help="processor name, e.g. catalog or watch_positions")
    replay.add_argument("--verify", action="store_true", help="then prove the rebuilt state equals the live one")
    replay.add_argument("--into", help="state URL to rebuild into (default: a fresh store beside the live one); "
                                       "never the live store, and an empty one unless --force")
    replay.add_argument("--resume", action="store_true",
                        help="go on with an interrupted rebuild into the --into store from where it stopped")
    replay.add_argument("--force", action="store_true",
                        help="rebuild into an --into store even though it holds the processor's rows (deleting them)")
    replay.add_argument("--keep", action="store_true",
                        help="keep the fresh store after a successful --verify (otherwise removed; always kept "
                             "after a plain rebuild or a failed verify)")
    replay.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the live processor")
    replay.set_defaults(fn=cmd_replay)
