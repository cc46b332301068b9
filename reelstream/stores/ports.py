"""The three ports every runtime implements: event log, state views, objects.

Each has an embedded adapter (SQLite, a local directory) and a real one (Kafka,
Cassandra, S3), chosen by URL in ``reelstream.stores.factory``, and one contract test
suite in ``tests/contracts`` run against both.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

from reelstream.errors import ObjectStoreError
from reelstream.events.topics import Topic

# --------------------------------------------------------------------------- event log


class Record(NamedTuple):
    """One message as stored in a topic partition.

    A NamedTuple rather than a frozen dataclass: consumers build hundreds of thousands
    a second, and tuple construction is several times cheaper.
    """

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    timestamp_ms: int
    headers: tuple[tuple[str, bytes], ...] = ()


class EventLog(ABC):
    """A partitioned, replayable log of messages (Kafka's model)."""

    @abstractmethod
    def ensure_topics(self, topics: Iterable[Topic]) -> None:
        """Create missing topics with their partition count and cleanup policy."""

    @abstractmethod
    def partitions(self, topic: str) -> int:
        """Number of partitions of an existing topic."""

    @abstractmethod
    def append(
        self, topic: str, key: bytes | None, value: bytes, *,
        headers: Sequence[tuple[str, bytes]] = (), timestamp_ms: int | None = None,
    ) -> None:
        """Queue a message; it lands on ``partition_for(key)``. Durable once ``flush`` returns."""

    @abstractmethod
    def flush(self, timeout: float = 30.0) -> None:
        """Block until every message appended before the call is durably written (acks=all
        on Kafka); EventLogError if one of them could not be, told to the thread that
        appended it when that thread flushes (see ``hand_off_failures`` for the exceptions)."""

    def hand_off_failures(self) -> None:
        """Declare that the calling thread appends but leaves flushing to other threads (an
        event loop whose flushes run in worker threads): a failure to deliver what it
        appends is then told to whichever flush comes next. Without this call a failure
        waits for the appending thread's own flush, or for any flush once that thread has
        ended. A no-op where a failed write fails the flush that makes it (embedded)."""

    @abstractmethod
    def end_offsets(self, topic: str) -> dict[int, int]:
        """Next offset to be written, per partition."""

    @abstractmethod
    def start_offsets(self, topic: str) -> dict[int, int]:
        """First offset still held, per partition (Kafka's low watermark): retention or deleted
        records move it on, and it equals the end offset when the partition holds nothing.
        Reading from the beginning starts there; ``end - start`` is what there is to read."""

    @abstractmethod
    def consumer(self, topics: Sequence[str], group_id: str | None) -> LogConsumer:
        """A consumer in ``group_id`` (partitions shared among the group's members, offsets
        committed explicitly), or with ``group_id=None`` a standalone reader assigned
        every partition from the beginning (for tail and replay)."""

    @abstractmethod
    def committed(self, group_id: str, topic: str) -> dict[int, int]:
        """The group's committed offsets per partition (absent when never committed)."""

    def close(self) -> None:
        """Release connections; pending appends are flushed first."""


class LogConsumer(ABC):
    """Reads a set of topics at-least-once: nothing is committed until ``commit``."""

    @abstractmethod
    def poll(self, max_records: int = 500, timeout: float = 1.0) -> list[Record]:
        """Return the next records of the assigned partitions, waiting up to ``timeout``."""

    @abstractmethod
    def commit(self, records: Sequence[Record]) -> None:
        """Commit the position after the last of ``records`` in each partition they came from."""

    @abstractmethod
    def seek_to_beginning(self) -> None: ...

    @abstractmethod
    def seek(self, topic: str, partition: int, offset: int) -> None: ...

    @abstractmethod
    def seek_to_timestamp(self, timestamp_ms: int) -> None:
        """Move each assigned partition to its first record at or after ``timestamp_ms``."""

    @abstractmethod
    def assignment(self) -> set[tuple[str, int]]:
        """Partitions this member currently reads (may be empty until the group settles)."""

    @abstractmethod
    def close(self) -> None:
        """Leave the group; uncommitted records will be redelivered to another member."""


# --------------------------------------------------------------------------- state views


class Column(StrEnum):
    TEXT = "text"
    INT = "int"
    BIGINT = "bigint"
    DOUBLE = "double"
    BOOLEAN = "boolean"
    JSON = "json"  # a JSON document; text in both stores


@dataclass(frozen=True)
class ViewSpec:
    """A table shaped by the query it serves.

    ``partition_key`` is what every read names (Cassandra's partition key); rows within
    a partition are ordered by ``clustering_key``. Every row also stores ``applied``:
    the log position of the last event folded into it, so a redelivered event is a no-op.
    """

    name: str
    partition_key: tuple[str, ...]
    clustering_key: tuple[str, ...]
    columns: Mapping[str, Column]  # every column, key columns included
    query: str  # the read this table is designed for, e.g. "watch positions of a user"

    @property
    def key_columns(self) -> tuple[str, ...]:
        return self.partition_key + self.clustering_key

    def key_of(self, row: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple(row[c] for c in self.key_columns)


APPLIED = "applied"  # column holding {"topic/partition": offset} of the last events applied


@dataclass
class Row:
    """A view row: key and value columns, plus the positions already applied to it."""

    values: dict[str, Any]
    applied: dict[str, int] = field(default_factory=dict)

    def has_applied(self, record: Record) -> bool:
        return self.applied.get(f"{record.topic}/{record.partition}", -1) >= record.offset


class StateStore(ABC):
    """Materialized views written by processors and read by gateways."""

    @abstractmethod
    def ensure_views(self, specs: Iterable[ViewSpec]) -> None:
        """Apply schema migrations so every view's table exists with every column."""

    @abstractmethod
    def get(self, spec: ViewSpec, key: Sequence[Any]) -> Row | None: ...

    @abstractmethod
    def put(self, spec: ViewSpec, row: Row) -> None:
        """Upsert the row (all columns, ``applied`` included) in one write."""

    # The two conditional writes are for rows several writers race for (a sign-up claiming
    # an email, two requests adding to one account), where a read then a ``put`` would let
    # the last writer silently win. Each is one atomic step in the store (a Cassandra
    # lightweight transaction, a single SQLite statement), so they cost more than ``put``:
    # processors, which own their rows and are idempotent by ``applied``, do not need them.
    # Rows that are written conditionally are best never written by a plain ``put`` while
    # a race may be on (Cassandra does not order a plain write against a Paxos round).

    @abstractmethod
    def put_if_absent(self, spec: ViewSpec, row: Row) -> bool:
        """Write the row only if no row has its key; True when this call created it, False
        (and nothing written) when one existed. Of N concurrent calls for one key, exactly
        one returns True."""

    @abstractmethod
    def put_if(self, spec: ViewSpec, row: Row, column: str, expected: Any) -> bool:
        """Replace the row (all columns, like ``put``) only if a row with its key exists and
        its ``column`` holds ``expected``: a compare-and-set. True when written; False,
        with nothing written, when the row is absent or the column holds something else
        (read it again and retry). ``column`` must be a non-key column and ``expected``
        not None; JSON values compare as their canonical encoding, which is how every
        adapter stores them, so a value read back matches what is stored."""

    @abstractmethod
    def query(self, spec: ViewSpec, partition: Sequence[Any]) -> list[Row]:
        """Every row of one partition, in clustering order."""

    def put_many(self, rows: Sequence[tuple[ViewSpec, Row]]) -> None:
        """``put`` of each row. No order among them is promised (adapters may send them
        all at once): a caller that needs one row durable before another calls twice."""
        for spec, row in rows:
            self.put(spec, row)

    def query_many(self, spec: ViewSpec, partitions: Sequence[Sequence[Any]]) -> list[list[Row]]:
        """``query`` of each partition, in order. Adapters whose reads cost a round trip
        override it to send them all at once (a gateway batching its cache refreshes)."""
        return [self.query(spec, partition) for partition in partitions]

    @abstractmethod
    def scan(self, spec: ViewSpec) -> Iterator[Row]:
        """Every row of the view (for replay verification and admin tools)."""

    @abstractmethod
    def truncate(self, spec: ViewSpec) -> None: ...

    @abstractmethod
    def drop(self) -> None:
        """Delete the whole store (the SQLite file, the Cassandra keyspace) and close it: for
        stores a tool made for itself, such as `reel replay`'s rebuild."""

    def close(self) -> None:
        """Release connections."""


# --------------------------------------------------------------------------- objects


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    sha256: str | None
    content_type: str
    etag: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class UploadedPart:
    """One part of a resumable upload as the store holds it."""

    number: int  # 1..10000 (S3's range)
    size: int
    md5: str  # hex MD5 of the part's bytes (S3's part ETag): compare with the local part to resume


class UploadNotFound(ObjectStoreError):
    """The resumable upload is unknown: completed, aborted, or expired by the store. Start a new one."""


Progress = Callable[[int, int], None]  # (bytes done, bytes total)
Source = bytes | Path | BinaryIO


class ObjectStore(ABC):
    """Origin storage for masters, encoded chunks and packaged segments."""

    @abstractmethod
    def put(
        self, key: str, source: Source, *, content_type: str = "application/octet-stream",
        metadata: Mapping[str, str] | None = None, expected_sha256: str | None = None,
        progress: Progress | None = None,
    ) -> ObjectInfo:
        """Store ``source`` under ``key``, computing its SHA-256 while streaming.

        Large sources go up in parts. When ``expected_sha256`` is given and differs,
        raises ChecksumMismatch and nothing is stored.
        """

    @abstractmethod
    def get(self, key: str) -> bytes:
        """The whole object; raises ChecksumMismatch if it no longer matches its SHA-256."""

    @abstractmethod
    def get_range(self, key: str, start: int, end: int) -> bytes:
        """Bytes ``start``..``end`` inclusive (HTTP Range semantics)."""

    @abstractmethod
    def download(self, key: str, path: Path) -> ObjectInfo:
        """Stream the object to ``path``, verifying its SHA-256."""

    def local_copy(self, key: str, path: Path) -> ObjectInfo:
        """The object as the local file ``path``, for reading only: a store that keeps its
        objects on this machine may hard-link them (nothing copied or re-read: a worker needs
        a multi-GB master in place, not a second copy of it); the others ``download``."""
        return self.download(key, path)

    @abstractmethod
    def head(self, key: str) -> ObjectInfo:
        """Raises ObjectNotFound when absent."""

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Objects whose key starts with ``prefix``, in key order."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; deleting a missing key is not an error."""

    # -- resumable uploads: parts survive the client; a later run asks which arrived and sends the rest.
    # Every part but the last must be at least 5 MiB (S3's rule, kept by every adapter's callers).

    @abstractmethod
    def begin_upload(self, key: str, *, sha256: str, content_type: str = "application/octet-stream",
                     metadata: Mapping[str, str] | None = None) -> str:
        """Start a resumable upload of ``key``; returns its id (keep it to resume). ``sha256``
        is the whole object's checksum, computed by the caller and stored with the object."""

    @abstractmethod
    def uploaded_parts(self, key: str, upload_id: str) -> dict[int, UploadedPart]:
        """The parts the store holds, by number; raises UploadNotFound when the upload is gone."""

    @abstractmethod
    def upload_part(self, key: str, upload_id: str, number: int, data: bytes) -> UploadedPart:
        """Store part ``number`` (replacing any earlier one of that number); the store checks
        the bytes arrived intact (Content-MD5). Raises UploadNotFound when the upload is gone."""

    @abstractmethod
    def complete_upload(self, key: str, upload_id: str, parts: Sequence[UploadedPart]) -> ObjectInfo:
        """Join ``parts`` in order into the object, atomically; the upload is then gone."""

    @abstractmethod
    def abort_upload(self, key: str, upload_id: str) -> None:
        """Drop the upload and its parts; aborting an unknown upload is not an error."""

    def exists(self, key: str) -> bool:
        from reelstream.errors import ObjectNotFound

        try:
            self.head(key)
            return True
        except ObjectNotFound:
            return False
