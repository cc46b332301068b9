"""EmbeddedLog across processes: several producers and a consumer group on one SQLite file."""

from __future__ import annotations

import multiprocessing as mp
import time
from pathlib import Path

from reelstream.events.topics import Cleanup, Topic
from reelstream.stores.embedded_log import EmbeddedLog

TOPIC = Topic("proc.test", "k", 4, Cleanup.DELETE, -1, frozenset(), "test")
PER_PRODUCER = 500


def produce(path: str, producer: int) -> None:
    log = EmbeddedLog(Path(path))
    for i in range(PER_PRODUCER):
        log.append(TOPIC.name, f"key-{i % 17}".encode(), f"{producer}:{i}".encode())
        if i % 50 == 0:
            log.flush()
    log.close()


def consume(path: str, out: mp.Queue[list[str]], expected: int) -> None:
    log = EmbeddedLog(Path(path), session_timeout_ms=3000)
    consumer = log.consumer([TOPIC.name], "group")
    seen: list[str] = []
    idle_since = time.monotonic()
    while time.monotonic() - idle_since < 5:
        records = consumer.poll(timeout=0.5)
        if records:
            seen += [r.value.decode() for r in records]
            consumer.commit(records)
            idle_since = time.monotonic()
    consumer.close()
    out.put(seen)


def test_three_producer_processes_and_a_two_member_group(tmp_path: Path) -> None:
    path = str(tmp_path / "log.db")
    EmbeddedLog(Path(path)).ensure_topics([TOPIC])
    ctx = mp.get_context("spawn")
    results: mp.Queue[list[str]] = ctx.Queue()
    consumers = [ctx.Process(target=consume, args=(path, results, 3 * PER_PRODUCER)) for _ in range(2)]
    producers = [ctx.Process(target=produce, args=(path, p)) for p in range(3)]
    for p in consumers + producers:
        p.start()
    seen = results.get(timeout=120) + results.get(timeout=120)
    for p in consumers + producers:
        p.join(timeout=30)
        assert p.exitcode == 0
    expected = {f"{p}:{i}" for p in range(3) for i in range(PER_PRODUCER)}
    assert set(seen) == expected  # nothing lost (at-least-once: a rebalance may redeliver)
    log = EmbeddedLog(Path(path))
    assert sum(log.end_offsets(TOPIC.name).values()) == 3 * PER_PRODUCER
    # Offsets are dense per partition: no gaps, no reuse under concurrent writers.
    assert sum(log.committed("group", TOPIC.name).values()) == 3 * PER_PRODUCER


def test_a_member_busy_between_polls_keeps_its_partitions(tmp_path: Path) -> None:
    """A worker encoding for longer than the session timeout is not evicted (background heartbeat)."""
    log = EmbeddedLog(tmp_path / "log.db", session_timeout_ms=1000)
    log.ensure_topics([TOPIC])
    busy = log.consumer([TOPIC.name], "g")
    busy.poll(timeout=0.1)
    other = log.consumer([TOPIC.name], "g")
    time.sleep(2.5)  # busy does not poll for 2.5 session timeouts
    for _ in range(3):
        other.poll(timeout=0.1)
        busy.poll(timeout=0.1)
    assert len(other.assignment()) == 2 and len(busy.assignment()) == 2
    busy.close()
    time.sleep(0.1)
    for _ in range(3):
        other.poll(timeout=0.1)
    assert len(other.assignment()) == 4  # a member that leaves hands its partitions over at once
    other.close()
