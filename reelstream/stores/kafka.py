"""KafkaLog: the event log on Apache Kafka through confluent-kafka (librdkafka).

The producer is idempotent with acks=all, so a retried send never duplicates or
reorders a partition; it uses librdkafka's ``murmur2_random`` partitioner, which is
Java's default (murmur2) for keyed messages, so a key lands on the same partition
as in the embedded log and in any Java or Kafka Streams producer.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Sequence
from functools import partial
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

from reelstream.errors import EventLogError, UnknownTopic
from reelstream.events.topics import Topic
from reelstream.stores.ports import EventLog, LogConsumer, Record

log = logging.getLogger(__name__)
_LEADER_MOVING = (KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE,
                  KafkaError.UNKNOWN_TOPIC_OR_PART)


class KafkaLog(EventLog):
    """``kafka://host:port[,host:port]``"""

    def __init__(self, bootstrap: str, client_id: str = "reelstream", extra: dict[str, Any] | None = None) -> None:
        self.bootstrap = bootstrap
        self._base = {"bootstrap.servers": bootstrap, "client.id": client_id, **(extra or {})}
        self._producer: Producer | None = None
        self._admin = AdminClient(self._base)
        self._partitions: dict[str, int] = {}
        self.metadata_timeout_s = 15.0  # how long a metadata request waits for an unreachable broker
        # Delivery failures by the thread that appended the message. A failure waits for that
        # thread's own flush, so one processor's flush never takes (and hides from it) another's,
        # not even before the other's first flush. Told to whichever flush comes instead: the
        # failures of a thread that handed them off (a gateway's event loop, whose publisher
        # flushes in worker threads) and of one that ended without flushing.
        self._errors: dict[int, list[str]] = {}
        self._handed_off: set[int] = set()
        self._lock = threading.Lock()
        self._since_poll = 0

    @property
    def producer(self) -> Producer:
        if self._producer is None:
            self._producer = Producer({
                **self._base,
                "enable.idempotence": True,  # implies acks=all and in-order, no-duplicate retries
                "acks": "all",
                # Only failures call back into Python: a callback per delivered message costs
                # more than the produce itself.
                "delivery.report.only.error": True,
                "partitioner": "murmur2_random",
                "linger.ms": 5,
                "compression.type": "lz4",
            })
        return self._producer

    def _topics(self) -> dict[str, Any]:
        """The cluster's topic metadata, every topic (a request naming one can auto-create it
        on brokers with auto.create.topics.enable, which would hide a typo behind a new topic)."""
        try:
            return dict(self._admin.list_topics(timeout=self.metadata_timeout_s).topics)
        except KafkaException as e:
            raise EventLogError(f"Kafka at {self.bootstrap} did not answer: {e}; is the broker running "
                                "(bash infra/local/start.sh kafka), and is the address right (REEL_LOG_URL, or "
                                "REEL_KAFKA_BOOTSTRAP with --kafka)?") from e

    def ensure_topics(self, topics: Iterable[Topic]) -> None:
        wanted = list(topics)
        existing = self._topics()
        new = [NewTopic(t.name, num_partitions=t.partitions, replication_factor=-1, config=t.kafka_config)
               for t in wanted if t.name not in existing]
        if not new:
            return
        for name, future in self._admin.create_topics(new, operation_timeout=30).items():
            try:
                future.result()
            except KafkaException as e:
                if e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise EventLogError(f"could not create topic {name} on {self.bootstrap}: {e}") from e
        self._await_leaders([t.topic for t in new])

    def _await_leaders(self, names: list[str], timeout: float = 30.0) -> None:
        """Return once every partition of ``names`` has a leader: a topic is created before its
        partitions are, and a read of their offsets meanwhile fails with NOT_LEADER_FOR_PARTITION."""
        deadline = time.monotonic() + timeout
        while True:
            topics = self._topics()
            waiting = [n for n in names if (meta := topics.get(n)) is None or meta.error is not None
                       or not meta.partitions or any(p.leader < 0 for p in meta.partitions.values())]
            if not waiting:
                return
            if time.monotonic() > deadline:
                raise EventLogError(f"topics {waiting} on {self.bootstrap} have partitions without a leader "
                                    f"after {timeout:.0f}s; is the broker healthy?")
            time.sleep(0.1)

    def partitions(self, topic: str) -> int:
        if topic not in self._partitions:
            meta = self._topics().get(topic)
            if meta is None or meta.error is not None or not meta.partitions:
                raise UnknownTopic(f"topic '{topic}' does not exist on {self.bootstrap}; run `reel topics --create`")
            self._partitions[topic] = len(meta.partitions)
        return self._partitions[topic]

    def _on_delivery(self, appender: int, err: KafkaError | None, msg: Any) -> None:
        if err is not None:
            with self._lock:
                self._errors.setdefault(appender, []).append(f"{msg.topic()}: {err}")

    def append(self, topic: str, key: bytes | None, value: bytes, *,
               headers: Sequence[tuple[str, bytes]] = (), timestamp_ms: int | None = None) -> None:
        producer = self._producer or self.producer
        reported = partial(self._on_delivery, threading.get_ident())
        while True:
            try:
                if headers or timestamp_ms is not None:
                    producer.produce(topic, value, key, headers=list(headers) or None,
                                     timestamp=timestamp_ms or 0, on_delivery=reported)
                else:
                    producer.produce(topic, value, key, on_delivery=reported)
                break
            except BufferError:
                producer.poll(0.05)  # local queue full: let deliveries drain, then retry
            except KafkaException as e:
                raise EventLogError(f"append to {topic} failed: {e}") from e
        self._since_poll += 1
        if self._since_poll >= 1000:  # serve delivery reports (errors only) now and then
            self._since_poll = 0
            producer.poll(0)

    def hand_off_failures(self) -> None:
        with self._lock:
            self._handed_off.add(threading.get_ident())

    def flush(self, timeout: float = 30.0) -> None:
        if self._producer is None:
            return
        me = threading.get_ident()
        remaining = self._producer.flush(timeout)
        alive = {t.ident for t in threading.enumerate()}
        with self._lock:
            errors = self._errors.pop(me, [])
            for appender in [a for a in self._errors if a in self._handed_off or a not in alive]:
                errors += self._errors.pop(appender)
        if remaining:
            raise EventLogError(f"{remaining} messages not acknowledged by {self.bootstrap} within {timeout}s")
        if errors:
            raise EventLogError(f"{len(errors)} appends failed, first: {errors[0]}")

    def end_offsets(self, topic: str, timeout: float = 30.0) -> dict[int, int]:
        return {p: high for p, (_, high) in self._watermarks(topic, "end", timeout).items()}

    def start_offsets(self, topic: str, timeout: float = 30.0) -> dict[int, int]:
        return {p: low for p, (low, _) in self._watermarks(topic, "start", timeout).items()}

    def _watermarks(self, topic: str, which: str, timeout: float) -> dict[int, tuple[int, int]]:
        """(low, high) watermark per partition, asked of the leaders (not librdkafka's cache)."""
        consumer = Consumer({**self._base, "group.id": "reelstream-offsets", "enable.auto.commit": False})
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=15)
                            for p in range(self.partitions(topic))}
                except KafkaException as e:
                    # A new topic's partitions take a moment to get their leaders on the broker.
                    if e.args[0].code() not in _LEADER_MOVING or time.monotonic() > deadline:
                        raise EventLogError(f"could not read {which} offsets of {topic}: {e}") from e
                    time.sleep(0.1)
        finally:
            consumer.close()

    def committed(self, group_id: str, topic: str) -> dict[int, int]:
        consumer = Consumer({**self._base, "group.id": group_id, "enable.auto.commit": False})
        try:
            tps = [TopicPartition(topic, p) for p in range(self.partitions(topic))]
            return {tp.partition: tp.offset for tp in consumer.committed(tps, timeout=15) if tp.offset >= 0}
        except KafkaException as e:
            raise EventLogError(f"could not read committed offsets of {group_id}: {e}") from e
        finally:
            consumer.close()

    def consumer(self, topics: Sequence[str], group_id: str | None) -> LogConsumer:
        for t in topics:
            self.partitions(t)
        return KafkaConsumer(self, list(topics), group_id)

    def close(self) -> None:
        self.flush()


class KafkaRecord:
    """A ``Record`` whose fields are read from librdkafka's message only when asked for.

    Building a full Record per message cost ~1.5 us (seven calls into the client plus the
    tuple); consumers mostly read value, topic, partition and offset, so they pay only for
    those. Same attribute names as ``ports.Record``.
    """

    __slots__ = ("_m",)

    def __init__(self, message: Any) -> None:
        self._m = message

    @property
    def topic(self) -> str:
        return str(self._m.topic())

    @property
    def partition(self) -> int:
        return int(self._m.partition())

    @property
    def offset(self) -> int:
        return int(self._m.offset())

    @property
    def key(self) -> bytes | None:
        key: bytes | None = self._m.key()
        return key

    @property
    def value(self) -> bytes:
        value: bytes = self._m.value()
        return value

    @property
    def timestamp_ms(self) -> int:
        return int(self._m.timestamp()[1])

    @property
    def headers(self) -> tuple[tuple[str, bytes], ...]:
        return tuple(self._m.headers() or ())

    def __repr__(self) -> str:
        return f"KafkaRecord({self.topic}/{self.partition}@{self.offset})"


BATCH_LINGER_S = 0.05  # how long a poll that has a record waits for more to fill its batch


class KafkaConsumer(LogConsumer):
    def __init__(self, log: KafkaLog, topics: list[str], group_id: str | None) -> None:
        self._log = log
        self._group = group_id
        self.transient_errors = 0
        self._pending_seek: tuple[str, int] | None = None
        config = {
            **log._base,
            # A standalone reader still needs a group id for librdkafka; it never commits.
            "group.id": group_id or "reelstream-reader",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 10_000,
            "heartbeat.interval.ms": 1_000,
            "partition.assignment.strategy": "range",
        }
        self._consumer = Consumer(config)
        if group_id is None:
            # Offset 0, not OFFSET_BEGINNING: the logical offset costs a ListOffsets round trip
            # and a fetch back-off (measured ~0.6 s); if retention removed offset 0,
            # auto.offset.reset=earliest moves to the first kept record anyway.
            self._consumer.assign([TopicPartition(t, p, 0) for t in topics for p in range(log.partitions(t))])
        else:
            self._consumer.subscribe(topics, on_assign=self._on_assign)

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if self._pending_seek is None:
            return
        kind, ts = self._pending_seek
        if kind == "beginning":
            for tp in partitions:
                tp.offset = OFFSET_BEGINNING
        else:
            for tp in partitions:
                tp.offset = ts
            partitions = consumer.offsets_for_times(partitions, timeout=15)
        consumer.assign(partitions)

    def poll(self, max_records: int = 500, timeout: float = 1.0) -> list[Record]:
        try:
            # Wait for the first message, then at most BATCH_LINGER_S for more: consume(n, t)
            # waits out all of t unless n messages come (measured: 2.0 s for a lone record
            # at t = 2), which put the processors' 0.5 s poll into every heartbeat's lag;
            # taking only what is there at once made batches so small that the processors'
            # per-batch reads and commits halved their throughput (bench/heartbeats.py).
            first = self._consumer.poll(timeout)
            messages = [] if first is None else [first]
            if first is not None and max_records > 1:
                messages += self._consumer.consume(max_records - 1, min(timeout, BATCH_LINGER_S))
        except KafkaException as e:
            raise EventLogError(f"poll failed: {e}") from e
        out: list[Record] = []
        append = out.append
        for m in messages:
            error = m.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    continue
                if error.fatal():
                    raise EventLogError(f"poll failed on {m.topic()}: {error}")
                # librdkafka reports transient trouble (a broker connection dropped, a leader
                # moving, a topic not yet in the metadata) as error messages and recovers by
                # itself; a long-lived reader must keep going rather than die on one.
                self.transient_errors += 1
                log.warning("consumer of %s: %s (librdkafka retries)", m.topic(), error)
                continue
            append(KafkaRecord(m))  # type: ignore[arg-type]  # a Record read lazily, same fields
        return out

    def commit(self, records: Sequence[Record]) -> None:
        if self._group is None or not records:
            return
        last: dict[tuple[str, int], int] = {}
        for r in records:
            last[(r.topic, r.partition)] = max(last.get((r.topic, r.partition), -1), r.offset)
        try:
            self._consumer.commit(offsets=[TopicPartition(t, p, o + 1) for (t, p), o in last.items()],
                                  asynchronous=False)
        except KafkaException as e:
            raise EventLogError(f"commit failed for group {self._group}: {e}") from e

    def seek_to_beginning(self) -> None:
        self._pending_seek = ("beginning", 0)
        assigned = [TopicPartition(tp.topic, tp.partition, OFFSET_BEGINNING) for tp in self._consumer.assignment()]
        if self._group is None and assigned:
            self._consumer.assign(assigned)  # see seek_to_timestamp
            return
        for tp in assigned:
            self.seek(tp.topic, tp.partition, OFFSET_BEGINNING)

    def seek(self, topic: str, partition: int, offset: int) -> None:
        try:
            self._consumer.seek(TopicPartition(topic, partition, offset))
        except KafkaException as e:
            raise EventLogError(f"cannot seek {topic}/{partition}: {e}") from e

    def seek_to_timestamp(self, timestamp_ms: int) -> None:
        self._pending_seek = ("timestamp", timestamp_ms)
        assigned = self._consumer.assignment()
        if not assigned:
            return
        try:
            found = self._consumer.offsets_for_times(
                [TopicPartition(tp.topic, tp.partition, timestamp_ms) for tp in assigned], timeout=15)
            for tp in found:
                if tp.offset < 0:  # no record at or after the time: go to the end
                    tp.offset = self._consumer.get_watermark_offsets(tp, timeout=15)[1]
        except KafkaException as e:
            raise EventLogError(f"cannot find offsets at {timestamp_ms} ms: {e}") from e
        if self._group is None:
            # A manual assignment takes its start offsets in assign(); seek() right after
            # assign() can fail with "Erroneous state" while the fetcher is not started.
            self._consumer.assign(found)
            return
        for tp in found:
            self.seek(tp.topic, tp.partition, tp.offset)

    def assignment(self) -> set[tuple[str, int]]:
        return {(tp.topic, tp.partition) for tp in self._consumer.assignment()}

    def close(self) -> None:
        self._consumer.close()
