"""``EventLog.flush``'s promise when writes fail or threads share one log, on EmbeddedLog.

The contract (``ports.EventLog.flush``): when flush returns, every message appended before
it is durable; when it raises, nothing appended is lost, so flushing again is the retry.
The failing half is tested on the embedded adapter only: a write can be made to fail there
deterministically (another connection holds SQLite's write lock), not on a real broker.
Processors in the embedded host share one EmbeddedLog, each flushing from its own thread.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from reelstream.errors import EventLogError
from reelstream.events.topics import Cleanup, Topic
from reelstream.stores.embedded_log import EmbeddedLog

TOPIC = Topic("flush.t", "k", 2, Cleanup.DELETE, -1, frozenset({"X"}), "test")


@pytest.fixture
def log(tmp_path: Path) -> Iterator[EmbeddedLog]:
    adapter = EmbeddedLog(tmp_path / "log.db")
    adapter.ensure_topics([TOPIC])
    yield adapter
    adapter.close()


def values_by_key(log: EmbeddedLog) -> dict[bytes | None, list[bytes]]:
    """Each key's values in offset order (a key's messages share one partition)."""
    reader = log.consumer([TOPIC.name], group_id=None)
    records = reader.poll(max_records=100, timeout=0.5)
    reader.close()
    out: dict[bytes | None, list[bytes]] = {}
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        out.setdefault(r.key, []).append(r.value)
    return out


class WriteLock:
    """Another connection (another process, a backup) holding the log's write lock."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("BEGIN IMMEDIATE")

    def release(self) -> None:
        self.conn.execute("ROLLBACK")
        self.conn.close()


def test_a_failed_flush_keeps_the_appends_and_a_retry_writes_them_once_in_order(log: EmbeddedLog) -> None:
    for i in range(3):
        log.append(TOPIC.name, b"a", f"a{i}".encode())
    log.append(TOPIC.name, b"b", b"b0")
    log.db.conn.execute("PRAGMA busy_timeout = 0")  # this thread's connection: fail at once
    lock = WriteLock(log.db.path)
    with pytest.raises(EventLogError, match="locked"):
        log.flush()
    log.append(TOPIC.name, b"a", b"a3")  # appended after the failure: goes after the kept ones
    lock.release()

    log.flush()

    assert sum(log.end_offsets(TOPIC.name).values()) == 5
    assert values_by_key(log) == {b"a": [b"a0", b"a1", b"a2", b"a3"], b"b": [b"b0"]}
    log.flush()  # nothing pending: writes nothing more
    assert sum(log.end_offsets(TOPIC.name).values()) == 5


def test_a_flush_returns_only_once_appends_another_threads_flush_took_are_durable(
        log: EmbeddedLog, monkeypatch: pytest.MonkeyPatch) -> None:
    """Thread B's flush picks up thread A's append and its write fails; A's own flush, which
    started meanwhile, must not return before A's message is written."""
    real_write: Callable[..., Any] = log.db.write
    b_writing, b_may_fail = threading.Event(), threading.Event()

    def write(fn: Callable[..., Any], appends: bool = False) -> Any:
        if threading.current_thread().name == "b":
            b_writing.set()
            assert b_may_fail.wait(10)
            raise EventLogError("embedded log: database is locked")
        return real_write(fn, appends=appends)

    monkeypatch.setattr(log.db, "write", write)
    log.append(TOPIC.name, b"a", b"output of processor A")
    errors: dict[str, BaseException] = {}

    def flush(name: str) -> None:
        try:
            log.flush()
        except BaseException as e:  # noqa: BLE001 - recorded for the assertions
            errors[name] = e

    b = threading.Thread(target=flush, args=("b",), name="b")
    b.start()
    assert b_writing.wait(10)  # B is writing A's message
    a = threading.Thread(target=flush, args=("a",), name="a")
    a.start()
    b_may_fail.set()
    b.join(10)
    a.join(10)

    assert isinstance(errors.get("b"), EventLogError)
    assert "a" not in errors
    assert values_by_key(log) == {b"a": [b"output of processor A"]}
