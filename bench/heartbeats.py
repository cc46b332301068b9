"""Heartbeats end to end: gateway -> Kafka -> processors -> Cassandra, beside a raw
confluent-kafka producer into the same topic; and the cores 5 million streams need.

    python bench/heartbeats.py [--seconds 8] [--players 64] [--lag-samples 40] [--drain-beats 4000]

1. Baseline (run last): a raw confluent-kafka producer (idempotent, acks=all) appends the same
   encoded PlaybackHeartbeat bytes to a topic laid out like ``reel.playback`` (msgs/s).
2. Gateway: ``reel gateway --only playback`` pinned to one CPU; ``--players`` concurrent
   players post beats (each answered 204 only once durable) for ``--seconds``.
3. Processors: ``reel processors`` (embedded host) folds them into Cassandra
   (watch positions, profile progress, live sessions); processed/s = beats / time from
   the first post until the last position is readable.
4. Lag: single beats posted one at a time under no other load; time from the post to the
   position being readable in Cassandra (p50/p99).
5. Processors alone: ``--drain-beats`` beats of ``--players`` sessions appended to
   ``reel.playback`` at once (the log's own producer, far faster than the gateway), then
   the time until every last position and session is readable: the processors' rate,
   which step 3 cannot show when the gateway posts more slowly than they fold.

5 M concurrent streams beat every 30 s: 166,667 beats/s. Cores = that rate x the CPU
each tier spent per beat (gateway process per post in step 2, processors process per beat
in step 5, from /proc: unlike rates, robust to a loaded machine; Kafka's and Cassandra's
own CPU are not counted), and, as before, that rate / each tier's measured rate.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SIGNING = "b1:" + base64.b64encode(b"b" * 32).decode()
STREAMS = 5_000_000
BEAT_S = 30


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))] if ordered else float("nan")


def raw_producer(bootstrap: str, values: list[tuple[bytes, bytes]], seconds: float) -> float:
    """The baseline, into a topic laid out like reel.playback (same partitions and config),
    deleted afterwards: flooding the shared reel.playback would cost every later consumer."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    from reelstream.events.topics import topic

    layout = topic("reel.playback")
    name = f"bench.playback.{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, layout.partitions, 1, config=layout.kafka_config)])[name].result(30)

    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
                         "compression.type": "lz4", "linger.ms": 5})
    sent, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for key, value in values:
            while True:
                try:
                    producer.produce(name, value, key)
                    break
                except BufferError:
                    producer.poll(0.01)
        sent += len(values)
    producer.flush(60)
    rate = sent / (time.perf_counter() - start)
    admin.delete_topics([name])[name].result(30)
    return rate


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process, all its threads (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def drain_rate(runtime: Any, processors_pid: int, title: str, unique: str, sessions: int,
               beats: int) -> dict[str, float]:
    """``beats`` heartbeats of ``sessions`` sessions appended to reel.playback at once, then
    the time (and the processors' CPU) until every last one is readable."""
    from reelstream.events.topics import topic_for
    from reelstream.processors.playback.logic import PROFILE_PROGRESS
    from reelstream.processors.sessions.logic import LIVE_SESSIONS
    from tests.support.events import heartbeat
    from tests.unit.gateways.support import wait_for

    users = [f"drain-{unique}-{i}" for i in range(sessions)]
    per_session = beats // sessions
    playback = topic_for("PlaybackHeartbeat")
    encoded = [(u.encode(), runtime.codec.encode(heartbeat(u, title, "tv", (n + 1) * 1000, n), playback.name))
               for n in range(per_session) for u in users]
    last = per_session * 1000
    cpu = cpu_s(processors_pid)
    start = time.perf_counter()
    for key, value in encoded:
        runtime.log.append(playback.name, key, value)
    runtime.log.flush()

    def readable() -> bool:
        return all((r := runtime.state.get(PROFILE_PROGRESS, (u, "main", title))) is not None
                   and r.values["position_ms"] == last
                   and any(s.values["position_ms"] == last for s in runtime.state.query(LIVE_SESSIONS, (u,)))
                   for u in users)

    wait_for(readable, 600, "the burst to be folded", interval=0.1)
    elapsed = time.perf_counter() - start
    return {"beats_per_s": len(encoded) / elapsed, "cpu_ms_per_beat": (cpu_s(processors_pid) - cpu) * 1000
            / len(encoded)}


async def players(url: str, tokens: list[tuple[str, str]], title: str, seconds: float) -> dict[str, float]:
    import aiohttp

    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def player(session: aiohttp.ClientSession, token: str, sid: str) -> None:
        nonlocal errors
        position = 0
        headers = {"Authorization": f"Bearer {token}", "X-Client-Country": "US"}
        while time.perf_counter() < deadline:
            position = (position + 1000) % 3_000_000
            start = time.perf_counter()
            async with session.post(url, headers=headers, json={
                    "sid": sid, "cid": title, "position_ms": position, "br": 3000, "bl": 20000,
                    "rendition_id": "h264-1080p", "mtp": 12000, "rebuffer_ms": 0, "cdn_node": "pop-1"}) as r:
                await r.read()
                errors += r.status != 204
            latencies.append(time.perf_counter() - start)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=len(tokens))) as session:
        began = time.perf_counter()
        await asyncio.gather(*(player(session, t, s) for t, s in tokens))
        elapsed = time.perf_counter() - began
    return {"posts_per_s": len(latencies) / elapsed, "p50_ms": percentile(latencies, 0.5) * 1000,
            "p99_ms": percentile(latencies, 0.99) * 1000, "posts": len(latencies), "errors": errors}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--players", type=int, default=64)
    parser.add_argument("--lag-samples", type=int, default=40)
    parser.add_argument("--drain-beats", type=int, default=4000)
    parser.add_argument("--state", choices=("cassandra", "sqlite"), default="cassandra",
                        help="the views' store (sqlite: for a machine without Cassandra; not comparable)")
    args = parser.parse_args()

    from bench.license import wait_port  # type: ignore[import-not-found]
    from reelstream.config import load_settings
    from reelstream.identity.accounts import IdentityStore
    from reelstream.identity.tokens import KeyRing, TokenSigner
    from reelstream.processors.playback.logic import PROFILE_PROGRESS
    from reelstream.processors.sessions.logic import LIVE_SESSIONS
    from reelstream.runtime import Runtime
    from tests.support.events import heartbeat
    from tests.unit.gateways.support import (
        Api,
        drop_keyspace,
        key_service,
        publish_title,
        start_groups_at_end,
        start_processors,
        stop_process,
        wait_for,
    )

    unique = uuid.uuid4().hex[:8]
    bootstrap = os.environ.get("REEL_KAFKA_BOOTSTRAP", "127.0.0.1:19092")
    data_dir = tempfile.mkdtemp()
    state_url = (f"cassandra://{os.environ.get('REEL_CASSANDRA_HOSTS', '127.0.0.1')}:"
                 f"{os.environ.get('REEL_CASSANDRA_PORT', '19042')}/bench_hb_{unique}"
                 if args.state == "cassandra" else f"sqlite://{data_dir}/state.db")
    env = {**os.environ, "REEL_LOG_URL": f"kafka://{bootstrap}", "REEL_STATE_URL": state_url,
           "REEL_GROUP_PREFIX": f"bench-{unique}", "REEL_DATA_DIR": data_dir,
           "REEL_GATEWAY_SIGNING_KEYS": SIGNING, "REEL_EDGE_SECRET": "bench-edge-secret-0123",
           "REEL_KEK": base64.b64encode(b"k" * 32).decode()}
    runtime = Runtime(load_settings(env))
    runtime.log.ensure_topics([])  # opening the log creates the topics
    start_groups_at_end(bootstrap, env["REEL_GROUP_PREFIX"])
    title = f"hb-{unique}"
    publish_title(runtime, key_service(runtime), title, duration_s=3600)
    identity = IdentityStore(runtime.state, lambda: int(time.time() * 1000))
    signer = TokenSigner(KeyRing.from_setting(SIGNING), time.time)
    tokens = []
    for i in range(args.players):
        device = identity.register_device(f"acc-{unique}-{i}", "tv", "tv", "hardware")
        tokens.append((signer.issue({"sub": device.account_id, "prf": "p-main", "dev": device.device_id},
                                    3600, "session"), f"s-{unique}-{i}"))

    processors = start_processors(runtime.settings, Path(env["REEL_DATA_DIR"]) / "processors.log")
    port = 18720
    gateway = subprocess.Popen(["taskset", "-c", "0", sys.executable, "-m", "reelstream.cli", "gateway",
                                "--only", "playback", "--port", str(port)], env=env, cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_port(port)
        api = Api(f"http://127.0.0.1:{port}")
        wait_for(lambda: api.call("GET", f"/playback/resume/{title}", tokens[0][0]).status_code == 200, 120,
                 "the catalog processor")
        asyncio.run(players(f"{api.base}/playback/heartbeats", tokens, title, 1.0))  # warm-up

        # 2. + 3. Load through the gateway, then until every last position is readable.
        first_post = time.perf_counter()
        gateway_cpu = cpu_s(gateway.pid)
        load = asyncio.run(players(f"{api.base}/playback/heartbeats", tokens, title, args.seconds))
        gateway_cpu_ms_per_post = (cpu_s(gateway.pid) - gateway_cpu) * 1000 / max(1, load["posts"])
        end_marks = []
        for token, sid in tokens:
            assert api.beat(token, sid, title, 3_500_000, "stop").status_code == 204
            end_marks.append(sid)
        accounts = [f"acc-{unique}-{i}" for i in range(args.players)]
        wait_for(lambda: all((r := runtime.state.get(PROFILE_PROGRESS, (a, "p-main", title))) is not None
                             and r.values["position_ms"] == 3_500_000 for a in accounts), 600,
                 "every final position", interval=0.1)
        wait_for(lambda: all(any(row.values["ended"] for row in runtime.state.query(LIVE_SESSIONS, (a,)))
                             for a in accounts), 600, "every session ended", interval=0.1)
        e2e_s = time.perf_counter() - first_post
        processed = load["posts"] * 1 + 2 * args.players  # each stop is 2 events
        processed_rate = processed / e2e_s

        # 4. Lag from post to readable position, one beat at a time.
        lags = []
        token, sid = tokens[0]
        for n in range(args.lag_samples):
            position = 1_000_000 + n * 1000
            start = time.perf_counter()
            assert api.beat(token, sid + "-lag", title, position).status_code == 204
            wait_for(lambda p=position: (r := runtime.state.get(PROFILE_PROGRESS, (accounts[0], "p-main", title)))
                     is not None and r.values["position_ms"] == p, 60, "the lag sample", interval=0.005)
            lags.append(time.perf_counter() - start)

        # 5. The processors alone: a burst appended straight to reel.playback.
        drain = drain_rate(runtime, processors.pid, title, unique, args.players, args.drain_beats)
    finally:
        stop_process(gateway)
        stop_process(processors)
    # 1. Baseline, run last (with the processors stopped, so none of them has to fold its
    # records): a raw producer appending the same encoded heartbeat bytes to reel.playback.
    codec = runtime.codec
    sample = [(f"raw-{i}".encode(), codec.encode(heartbeat(f"raw-{i}", title, "tv", i * 1000, i)))
              for i in range(1000)]
    raw_rate = raw_producer(bootstrap, sample, min(args.seconds, 5.0))
    runtime.close()
    drop_keyspace(runtime.settings.state_url)

    beats_needed = STREAMS / BEAT_S
    gateway_cores = beats_needed / load["posts_per_s"]
    processor_cores = beats_needed / drain["beats_per_s"]  # one Python process: at most one core
    gateway_cores_cpu = beats_needed * gateway_cpu_ms_per_post / 1000
    processor_cores_cpu = beats_needed * drain["cpu_ms_per_beat"] / 1000
    figures = {
        "bench": "heartbeats", "state": args.state, "players": args.players, "seconds": args.seconds,
        "raw_producer_msgs_per_s": raw_rate, "gateway_posts_per_s_one_core": load["posts_per_s"],
        "gateway_p50_ms": load["p50_ms"], "gateway_p99_ms": load["p99_ms"], "gateway_errors": load["errors"],
        "gateway_to_raw_ratio": load["posts_per_s"] / raw_rate,
        "end_to_end_processed_per_s": processed_rate, "end_to_end_seconds": e2e_s,
        "processors_drain_beats": args.drain_beats, "processors_beats_per_s": drain["beats_per_s"],
        "processors_cpu_ms_per_beat": drain["cpu_ms_per_beat"], "gateway_cpu_ms_per_post": gateway_cpu_ms_per_post,
        "processors_to_raw_ratio": drain["beats_per_s"] / raw_rate,
        "lag_p50_ms": percentile(lags, 0.5) * 1000, "lag_p99_ms": percentile(lags, 0.99) * 1000,
        "streams": STREAMS, "beats_per_s_needed": beats_needed,
        "gateway_cores_for_5m": gateway_cores, "processor_cores_for_5m": processor_cores,
        "total_cores_for_5m": gateway_cores + processor_cores,
        "gateway_cores_for_5m_from_cpu": gateway_cores_cpu, "processor_cores_for_5m_from_cpu": processor_cores_cpu,
        "total_cores_for_5m_from_cpu": gateway_cores_cpu + processor_cores_cpu,
        "load_average_1m": os.getloadavg()[0],
        "no_errors_met": load["errors"] == 0,
        "lag_under_30s_met": percentile(lags, 0.99) < BEAT_S,
    }
    print(f"\nHeartbeats, {args.players} players for {args.seconds:.0f} s; gateway on one core (taskset -c 0); "
          f"Kafka + {args.state} + processors share the machine")
    print(f"{'path':<44}{'rate/s':>12}{'p50 ms':>9}{'p99 ms':>9}{'vs raw':>9}")
    print(f"{'raw confluent-kafka producer (baseline)':<44}{raw_rate:>12,.0f}{'':>9}{'':>9}{1:>8.2f}x")
    print(f"{'gateway POST -> durable in Kafka (204)':<44}{load['posts_per_s']:>12,.0f}{load['p50_ms']:>9.2f}"
          f"{load['p99_ms']:>9.2f}{figures['gateway_to_raw_ratio']:>8.3f}x")
    print(f"{'end to end: readable in ' + args.state:<44}{processed_rate:>12,.0f}{'':>9}{'':>9}"
          f"{processed_rate / raw_rate:>8.3f}x")
    print(f"{'processors alone: burst readable in ' + args.state:<44}{drain['beats_per_s']:>12,.0f}{'':>9}{'':>9}"
          f"{drain['beats_per_s'] / raw_rate:>8.3f}x")
    print(f"{'lag, post -> readable position':<44}{'':>12}{figures['lag_p50_ms']:>9.1f}{figures['lag_p99_ms']:>9.1f}")
    print(f"\nCPU per beat: gateway {gateway_cpu_ms_per_post:.2f} ms, processors {drain['cpu_ms_per_beat']:.2f} ms.")
    print(f"5,000,000 streams x 1 beat / 30 s = {beats_needed:,.0f} beats/s: from CPU per beat, gateway "
          f"{gateway_cores_cpu:,.0f} cores + processors {processor_cores_cpu:,.0f} cores = "
          f"{gateway_cores_cpu + processor_cores_cpu:,.0f} cores; from the measured rates, {gateway_cores:,.0f} + "
          f"{processor_cores:,.0f} = {gateway_cores + processor_cores:,.0f} cores. Load average "
          f"{os.getloadavg()[0]:.2f}.\n")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
