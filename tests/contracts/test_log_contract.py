"""One contract for the event log, run against EmbeddedLog (SQLite) and KafkaLog (a real broker)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reelstream.errors import UnknownTopic
from reelstream.events.partitioning import partition_for
from reelstream.events.topics import Cleanup, Topic
from reelstream.stores.embedded_log import EmbeddedLog
from reelstream.stores.kafka import KafkaLog
from reelstream.stores.namespaced import NamespacedLog
from reelstream.stores.ports import EventLog, LogConsumer, Record


@pytest.fixture(params=["embedded", "kafka", "kafka-namespaced"])
def log(request: pytest.FixtureRequest, tmp_path: Path, unique: str) -> Iterator[EventLog]:
    if request.param == "embedded":
        adapter: EventLog = EmbeddedLog(tmp_path / "log.db", session_timeout_ms=3000)
    elif request.param == "kafka":
        adapter = KafkaLog(request.getfixturevalue("kafka_bootstrap"))
    else:  # one deployment's view of a shared cluster: same contract through the prefix
        adapter = NamespacedLog(KafkaLog(request.getfixturevalue("kafka_bootstrap")), f"ns-{unique}")
    yield adapter
    adapter.close()


def reopen(log: EventLog, tmp_path: Path) -> EventLog:
    """A second client on the same log (another process's view)."""
    if isinstance(log, NamespacedLog):
        return NamespacedLog(reopen(log.inner, tmp_path), log.namespace)
    if isinstance(log, EmbeddedLog):
        return EmbeddedLog(tmp_path / "log.db")
    return KafkaLog(log.bootstrap)  # type: ignore[attr-defined]


def delete_before(log: EventLog, topic: str, partition: int, offset: int) -> None:
    """Remove the partition's records below ``offset``, as retention does: Kafka's own
    DeleteRecords; the embedded log keeps every record, so its rows are deleted in SQL."""
    if isinstance(log, NamespacedLog):
        delete_before(log.inner, log.physical(topic), partition, offset)
    elif isinstance(log, EmbeddedLog):
        log.db.write(lambda conn: conn.execute(
            "DELETE FROM records WHERE topic = ? AND partition = ? AND offset < ?", (topic, partition, offset)))
    else:
        from confluent_kafka import TopicPartition
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": log.bootstrap})  # type: ignore[attr-defined]
        for future in admin.delete_records([TopicPartition(topic, partition, offset)]).values():
            future.result(timeout=30)


def _topic(unique: str, partitions: int = 3) -> Topic:
    return Topic(f"contract.{unique}", "k", partitions, Cleanup.DELETE, -1, frozenset({"X"}), "test")


def drain(consumer: LogConsumer, count: int, timeout: float = 30.0) -> list[Record]:
    got: list[Record] = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        got.extend(consumer.poll(max_records=500, timeout=0.5))
    return got


def test_keys_land_on_kafkas_default_partition_in_order(log: EventLog, unique: str) -> None:
    topic = _topic(unique, partitions=4)
    log.ensure_topics([topic])
    keys = [f"title-{i % 7}".encode() for i in range(40)]
    for i, key in enumerate(keys):
        log.append(topic.name, key, f"v{i}".encode(), headers=[("h", str(i).encode())])
    log.flush()
    reader = log.consumer([topic.name], group_id=None)
    records = drain(reader, 40)
    reader.close()
    assert len(records) == 40
    for r in records:
        assert r.topic == topic.name
        assert r.partition == partition_for(r.key, 4)
        i = int(r.value[1:])
        assert r.headers == (("h", str(i).encode()),)
    for p in range(4):
        in_partition = [int(r.value[1:]) for r in records if r.partition == p]
        assert in_partition == sorted(in_partition)
        assert [r.offset for r in records if r.partition == p] == list(range(len(in_partition)))
    assert sum(log.end_offsets(topic.name).values()) == 40


def test_a_group_resumes_from_its_commit_and_redelivers_the_rest(log: EventLog, unique: str) -> None:
    topic = _topic(unique, partitions=1)
    log.ensure_topics([topic])
    for i in range(10):
        log.append(topic.name, b"same-key", str(i).encode())
    log.flush()
    group = f"g-{unique}"
    first = log.consumer([topic.name], group)
    records = drain(first, 10)
    first.commit(records[:4])
    first.close()
    assert log.committed(group, topic.name) == {0: 4}
    second = log.consumer([topic.name], group)
    again = drain(second, 6)
    second.close()
    assert [r.value for r in again] == [str(i).encode() for i in range(4, 10)]


def test_group_members_share_the_partitions(log: EventLog, unique: str) -> None:
    topic = _topic(unique, partitions=4)
    log.ensure_topics([topic])
    group = f"g-{unique}"
    a, b = log.consumer([topic.name], group), log.consumer([topic.name], group)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        a.poll(timeout=0.2)
        b.poll(timeout=0.2)
        if len(a.assignment()) == 2 and len(b.assignment()) == 2:
            break
    assert a.assignment() | b.assignment() == {(topic.name, p) for p in range(4)}
    assert not a.assignment() & b.assignment()
    for i in range(20):
        log.append(topic.name, f"k{i}".encode(), str(i).encode())
    log.flush()
    got: list[Record] = []
    deadline = time.monotonic() + 30
    while len(got) < 20 and time.monotonic() < deadline:
        got += a.poll(timeout=0.2) + b.poll(timeout=0.2)
    a.close()
    b.close()
    assert sorted(int(r.value) for r in got) == list(range(20))


def test_seek_to_beginning_offset_and_timestamp(log: EventLog, unique: str) -> None:
    topic = _topic(unique, partitions=1)
    log.ensure_topics([topic])
    base = 1_700_000_000_000
    for i in range(10):
        log.append(topic.name, b"k", str(i).encode(), timestamp_ms=base + i * 1000)
    log.flush()
    reader = log.consumer([topic.name], group_id=None)
    assert len(drain(reader, 10)) == 10
    reader.seek(topic.name, 0, 7)
    assert [r.value for r in drain(reader, 3)] == [b"7", b"8", b"9"]
    reader.seek_to_timestamp(base + 4500)
    assert [r.value for r in drain(reader, 5)] == [b"5", b"6", b"7", b"8", b"9"]
    reader.seek_to_beginning()
    assert len(drain(reader, 10)) == 10
    reader.close()


def test_appends_are_durable_across_a_new_client(log: EventLog, unique: str, tmp_path: Path) -> None:
    topic = _topic(unique, partitions=2)
    log.ensure_topics([topic])
    log.ensure_topics([topic])  # idempotent
    for i in range(5):
        log.append(topic.name, f"k{i}".encode(), b"x")
    log.flush()
    log.close()
    reopened = reopen(log, tmp_path)
    assert sum(reopened.end_offsets(topic.name).values()) == 5
    assert reopened.partitions(topic.name) == 2
    reopened.close()


def test_unknown_topic_is_a_clear_error(log: EventLog, unique: str) -> None:
    with pytest.raises(UnknownTopic, match="reel topics --create"):
        log.partitions(f"missing.{unique}")


def test_a_topic_is_readable_as_soon_as_it_is_ensured(log: EventLog, unique: str) -> None:
    # Kafka creates a topic before its partitions have leaders; a caller of ensure_topics
    # must not see that window (reading end offsets in it failed with NOT_LEADER_FOR_PARTITION).
    topic = _topic(unique, partitions=12)
    log.ensure_topics([topic])
    assert log.end_offsets(topic.name) == {p: 0 for p in range(12)}


def test_start_offsets_follow_retention_and_reading_begins_there(log: EventLog, unique: str) -> None:
    topic = _topic(unique, partitions=2)
    log.ensure_topics([topic])
    assert log.start_offsets(topic.name) == {0: 0, 1: 0}
    for i in range(6):
        log.append(topic.name, b"same-key", str(i).encode())
    log.flush()
    p = partition_for(b"same-key", 2)
    assert log.start_offsets(topic.name) == {0: 0, 1: 0}
    delete_before(log, topic.name, p, 4)
    assert log.start_offsets(topic.name) == {p: 4, 1 - p: 0}
    reader = log.consumer([topic.name], group_id=None)
    assert [(r.offset, r.value) for r in drain(reader, 2)] == [(4, b"4"), (5, b"5")]
    reader.close()
    # Emptied by retention: nothing left to read, and its start says so by equalling its end.
    delete_before(log, topic.name, p, 6)
    assert log.start_offsets(topic.name) == {p: 6, 1 - p: 0}
    assert log.end_offsets(topic.name) == {p: 6, 1 - p: 0}
