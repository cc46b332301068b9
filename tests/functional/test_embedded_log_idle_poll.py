"""An idle EmbeddedLog consumer skips its reads while nothing changes, and misses nothing.

The skip rests on SQLite's data_version (other connections' commits: other threads and
processes) and the log's own commit count (this thread's connection); each way a record
can arrive after an empty poll is checked here."""

from __future__ import annotations

import threading
from pathlib import Path

from reelstream.events.topics import Cleanup, Topic
from reelstream.stores.embedded_log import EmbeddedLog

TOPIC = Topic("idle.test", "k", 3, Cleanup.DELETE, -1, frozenset(), "test")


def _log(path: Path) -> EmbeddedLog:
    log = EmbeddedLog(path)
    log.ensure_topics([TOPIC])
    return log


def _values(records: list) -> list[str]:  # type: ignore[type-arg]
    return sorted(r.value.decode() for r in records)


def test_a_record_from_another_connection_after_an_empty_poll_is_read(tmp_path: Path) -> None:
    log, other = _log(tmp_path / "log.db"), _log(tmp_path / "log.db")  # another process's view of the file
    consumer = log.consumer([TOPIC.name], None)
    assert consumer.poll(timeout=0.05) == []
    assert consumer.poll(timeout=0.05) == []  # the idle check itself
    other.append(TOPIC.name, b"a", b"from elsewhere")
    other.flush()
    assert _values(consumer.poll(timeout=1.0)) == ["from elsewhere"]


def test_a_record_from_the_same_thread_and_from_another_thread_is_read(tmp_path: Path) -> None:
    log = _log(tmp_path / "log.db")
    consumer = log.consumer([TOPIC.name], None)
    assert consumer.poll(timeout=0.05) == []
    log.append(TOPIC.name, b"a", b"same thread")  # same connection: data_version does not move
    log.flush()
    assert _values(consumer.poll(timeout=1.0)) == ["same thread"]
    assert consumer.poll(timeout=0.05) == []
    writer = threading.Thread(target=lambda: (log.append(TOPIC.name, b"b", b"other thread"), log.flush()))
    writer.start()
    writer.join()
    assert _values(consumer.poll(timeout=1.0)) == ["other thread"]


def test_a_full_batch_is_followed_by_the_rest_without_any_new_commit(tmp_path: Path) -> None:
    log = _log(tmp_path / "log.db")
    for i in range(7):
        log.append(TOPIC.name, f"k{i}".encode(), str(i).encode())
    log.flush()
    consumer = log.consumer([TOPIC.name], None)
    got = consumer.poll(max_records=5, timeout=0.05)
    got += consumer.poll(max_records=5, timeout=0.05)
    assert _values(got) == [str(i) for i in range(7)]
    assert consumer.poll(timeout=0.05) == []


def test_a_seek_after_an_empty_poll_reads_again(tmp_path: Path) -> None:
    log = _log(tmp_path / "log.db")
    log.append(TOPIC.name, b"a", b"first")
    log.flush()
    consumer = log.consumer([TOPIC.name], None)
    assert _values(consumer.poll(timeout=0.05)) == ["first"]
    assert consumer.poll(timeout=0.05) == []
    consumer.seek_to_beginning()
    assert _values(consumer.poll(timeout=0.05)) == ["first"]


def test_a_waiting_consumer_wakes_for_an_append_from_another_connection_within_its_poll(tmp_path: Path) -> None:
    """An idle consumer blocks (no look every 20 ms); another process's append reaches it
    through the watcher, long before the poll's timeout."""
    import time

    log, other = _log(tmp_path / "log.db"), _log(tmp_path / "log.db")
    consumer = log.consumer([TOPIC.name], None)
    assert consumer.poll(timeout=0.05) == []

    def later() -> None:
        time.sleep(0.3)
        other.append(TOPIC.name, b"a", b"late")
        other.flush()

    writer = threading.Thread(target=later)
    started = time.monotonic()
    writer.start()
    got = consumer.poll(timeout=10.0)
    waited = time.monotonic() - started
    writer.join()
    assert _values(got) == ["late"]
    assert waited < 5.0, "woken by the append, not by the poll's timeout"
