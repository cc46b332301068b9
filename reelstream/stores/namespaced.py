"""NamespacedLog: one deployment's view of an event log that several deployments share.

Two ReelStream deployments (staging and production, two regions, two test runs) may use
one Kafka cluster. With the same topic names their processes would read each other's
events: a transcode worker of one would take the other's jobs, find no master in its own
bucket and fail the other's title. A namespace gives every topic and consumer group of a
deployment a prefix (``staging.reel.catalog``, ``staging.reel.processor.catalog``) while
the code keeps using the logical names: records read through it name their logical topic.
It wraps any adapter, so both runtimes run it through the same contract tests.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

from reelstream.errors import ConfigError
from reelstream.events.topics import Topic
from reelstream.stores.ports import EventLog, LogConsumer, Record

# Kafka's legal topic characters; the longest logical topic name leaves room for 200.
_NAMESPACE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}")


def check_namespace(namespace: str) -> str:
    if not _NAMESPACE.fullmatch(namespace):
        raise ConfigError(
            f"namespace (REEL_NAMESPACE) = {namespace!r}: use 1 to 200 of the characters Kafka allows "
            "in a topic name (letters, digits, '.', '_', '-'), not starting with '.'")
    return namespace


class LogicalRecord:
    """A record read through a namespace: its own topic name is the logical one."""

    __slots__ = ("_record", "topic")

    def __init__(self, record: Any, topic: str) -> None:
        self._record = record
        self.topic = topic

    def __getattr__(self, name: str) -> Any:  # partition, offset, key, value, timestamp_ms, headers
        return getattr(self._record, name)

    def __repr__(self) -> str:
        return f"LogicalRecord({self.topic}/{self.partition}@{self.offset})"


class NamespacedLog(EventLog):
    def __init__(self, inner: EventLog, namespace: str) -> None:
        self.inner = inner
        self.namespace = check_namespace(namespace)
        self._prefix = f"{namespace}."

    def physical(self, topic: str) -> str:
        return self._prefix + topic

    def logical(self, physical: str) -> str:
        return physical.removeprefix(self._prefix)

    def ensure_topics(self, topics: Iterable[Topic]) -> None:
        self.inner.ensure_topics(replace(t, name=self.physical(t.name)) for t in topics)

    def partitions(self, topic: str) -> int:
        return self.inner.partitions(self.physical(topic))

    def append(self, topic: str, key: bytes | None, value: bytes, *,
               headers: Sequence[tuple[str, bytes]] = (), timestamp_ms: int | None = None) -> None:
        self.inner.append(self._prefix + topic, key, value, headers=headers, timestamp_ms=timestamp_ms)

    def flush(self, timeout: float = 30.0) -> None:
        self.inner.flush(timeout)

    def hand_off_failures(self) -> None:
        self.inner.hand_off_failures()

    def end_offsets(self, topic: str) -> dict[int, int]:
        return self.inner.end_offsets(self.physical(topic))

    def start_offsets(self, topic: str) -> dict[int, int]:
        return self.inner.start_offsets(self.physical(topic))

    def consumer(self, topics: Sequence[str], group_id: str | None) -> LogConsumer:
        inner = self.inner.consumer([self.physical(t) for t in topics],
                                    None if group_id is None else self.physical(group_id))
        return NamespacedConsumer(self, inner)

    def committed(self, group_id: str, topic: str) -> dict[int, int]:
        return self.inner.committed(self.physical(group_id), self.physical(topic))

    def close(self) -> None:
        self.inner.close()


class NamespacedConsumer(LogConsumer):
    def __init__(self, log: NamespacedLog, inner: LogConsumer) -> None:
        self._log = log
        self._inner = inner
        self._logical: dict[str, str] = {}

    def poll(self, max_records: int = 500, timeout: float = 1.0) -> list[Record]:
        records = self._inner.poll(max_records, timeout)
        names = self._logical
        out = []
        for r in records:
            physical = r.topic
            name = names.get(physical)
            if name is None:
                name = names[physical] = self._log.logical(physical)
            out.append(LogicalRecord(r, name))
        return out  # type: ignore[return-value]  # same fields as Record, read lazily

    def commit(self, records: Sequence[Record]) -> None:
        self._inner.commit([Record(self._log.physical(r.topic), r.partition, r.offset, None, b"", 0)
                            for r in records])

    def seek_to_beginning(self) -> None:
        self._inner.seek_to_beginning()

    def seek(self, topic: str, partition: int, offset: int) -> None:
        self._inner.seek(self._log.physical(topic), partition, offset)

    def seek_to_timestamp(self, timestamp_ms: int) -> None:
        self._inner.seek_to_timestamp(timestamp_ms)

    def assignment(self) -> set[tuple[str, int]]:
        return {(self._log.logical(t), p) for t, p in self._inner.assignment()}

    def close(self) -> None:
        self._inner.close()
