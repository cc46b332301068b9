"""The embedded runtime end to end: no servers, the same processor code as on Kafka."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reelstream.config import Settings
from reelstream.errors import SchemaViolation
from reelstream.events.partitioning import partition_for
from reelstream.events.topics import DEAD_LETTER_TOPIC, topic
from reelstream.processors.embedded import run_embedded
from reelstream.processors.playback.logic import WATCH_POSITIONS, WatchPositionProcessor
from reelstream.processors.registry import all_processors
from reelstream.runtime import Runtime
from tests.support.events import heartbeat, registered

REPO = Path(__file__).resolve().parents[2]


def run_until(runtime: Runtime, condition, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(run_embedded(all_processors(), runtime.log, runtime.state, runtime.codec,
                                                "test", stop))
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, "processors did not reach the expected state in time"
            await asyncio.sleep(0.1)
        stop.set()
        await task

    asyncio.run(main())


def test_state_survives_a_restart_and_redelivery_changes_nothing(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    runtime = Runtime(settings)
    for i in range(5):
        runtime.publish(heartbeat("u1", "t1", "tv", 30_000 * (i + 1), 30 * i), flush=False)
    runtime.publish(registered("t1"))
    spec = WATCH_POSITIONS
    run_until(runtime, lambda: (r := runtime.state.get(spec, ("u1", "t1", "tv"))) is not None
              and r.values["position_ms"] == 150_000)
    runtime.close()

    reopened = Runtime(Settings(data_dir=tmp_path))
    row = reopened.state.get(spec, ("u1", "t1", "tv"))
    assert row is not None and row.values["position_ms"] == 150_000
    # Redeliver everything: a consumer group starting over must not change any row.
    reopened.state.ensure_views(WatchPositionProcessor.views)
    before = list(reopened.state.scan(spec))
    from reelstream.processors.runner import ProcessorRunner

    runner = ProcessorRunner(WatchPositionProcessor(), reopened.log, reopened.state, reopened.codec, "test")
    reader = reopened.log.consumer(["reel.playback"], group_id=None)
    runner.process(reader.poll(max_records=100, timeout=2))
    reader.close()
    assert runner.stats.duplicates == 5 and runner.stats.applied == 0
    assert list(reopened.state.scan(spec)) == before
    reopened.close()


def test_undecodable_messages_go_to_the_dead_letter_topic_and_consumption_goes_on(tmp_path: Path) -> None:
    runtime = Runtime(Settings(data_dir=tmp_path))
    runtime.log.append("reel.playback", b"u1", b"not avro at all")
    runtime.publish(heartbeat("u1", "t1", "tv", 42_000, 0))
    run_until(runtime, lambda: runtime.state.get(WATCH_POSITIONS, ("u1", "t1", "tv")) is not None)
    reader = runtime.log.consumer([DEAD_LETTER_TOPIC], group_id=None)
    letters = [runtime.codec.decode(r.value) for r in reader.poll(timeout=2)]
    reader.close()
    # Each processor reading the topic gives up on the message once, under its own name.
    readers = sorted(f"reel.processor.{p.name}" for p in all_processors() if "reel.playback" in p.topics)
    assert sorted(letter["consumer"] for letter in letters) == readers
    for letter in letters:
        assert letter["value"] == b"not avro at all"
        assert letter["source_topic"] == "reel.playback" and letter["source_offset"] == 0
        assert "not a ReelStream event" in letter["reason"]
    runtime.close()


def test_an_invalid_event_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    runtime = Runtime(Settings(data_dir=tmp_path))
    bad = heartbeat("u1", "t1", "tv", 1, 0).with_data(position_ms="ten")
    with pytest.raises(SchemaViolation, match="position_ms"):
        runtime.publish(bad)
    assert sum(runtime.log.end_offsets("reel.playback").values()) == 0
    runtime.close()


def reel(*args: str, data_dir: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REEL_DATA_DIR": str(data_dir)}
    return subprocess.run([sys.executable, "-m", "reelstream.cli", *args], env=env, text=True,
                          capture_output=True, check=check, timeout=600)


def test_replay_verify_after_ten_thousand_events(tmp_path: Path) -> None:
    runtime = Runtime(Settings(data_dir=tmp_path))
    for i in range(10_000):
        runtime.publish(heartbeat(f"u{i % 97}", f"t{i % 13}", ("tv", "phone", "browser")[i % 3], i * 1000, i),
                        flush=False)
    runtime.log.flush()
    wp = WatchPositionProcessor()
    run_until(runtime, lambda: sum(runtime.log.committed("reel.processor.watch_positions", "reel.playback").values())
              == 10_000, timeout=240)
    runtime.close()
    result = reel("replay", "watch_positions", "--verify", data_dir=tmp_path)
    assert "rebuilt watch_positions from 10000 records" in result.stdout
    assert "verified: rebuilt state equals the live state" in result.stdout
    # And verification really compares: tamper with the live state and it must fail.
    tampered = Runtime(Settings(data_dir=tmp_path))
    row = next(tampered.state.scan(wp.views[0]))
    row.values["position_ms"] += 1
    tampered.state.put(wp.views[0], row)
    tampered.close()
    failed = reel("replay", "watch_positions", "--verify", data_dir=tmp_path, check=False)
    assert failed.returncode == 1 and "VERIFY FAILED: 1 differences" in failed.stderr


def test_cli_tail_emit_and_bad_input(tmp_path: Path) -> None:
    ok = reel("emit", "EntitlementGranted",
              '{"entitlement_id": "e1", "user_id": "u9", "kind": "RENTAL", "title_id": "t1", "plan": null,'
              ' "starts_at": 1764000000000, "ends_at": null}', data_dir=tmp_path)
    assert len(ok.stdout.strip()) == 36
    bad = reel("emit", "EntitlementGranted", '{"entitlement_id": "e2", "user_id": "u9", "kind": "LOAN"}',
               data_dir=tmp_path, check=False)
    assert bad.returncode == 2 and "field 'kind'" in bad.stderr and "LOAN" in bad.stderr
    tail = reel("tail", "reel.entitlements", "--from-beginning", "--exit-at-end", "--json", data_dir=tmp_path)
    assert '"user_id": "u9"' in tail.stdout and '"type": "EntitlementGranted"' in tail.stdout
    assert tail.stdout.count("\n") == 1
    where = json.loads(tail.stdout)["log"]
    assert (where["topic"], where["offset"], where["key"]) == ("reel.entitlements", 0, "u9")
    assert where["partition"] == partition_for(b"u9", topic("reel.entitlements").partitions)
