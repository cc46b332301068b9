"""A failed Kafka delivery is told to the thread that appended the message, so two processors
sharing one producer never take each other's failures. librdkafka reports a failure only after
message.timeout.ms (minutes) of retries, which a test cannot wait for: a stand-in producer
delivers the reports instead (the fault-injection case for a mock)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from reelstream.errors import EventLogError
from reelstream.events.codec import EventCodec
from reelstream.events.model import new_event
from reelstream.gateways.publisher import Publisher
from reelstream.stores.kafka import KafkaLog


class FailedMessage:
    def __init__(self, topic: str) -> None:
        self._topic = topic

    def topic(self) -> str:
        return self._topic


class StandInProducer:
    """Queues what is produced; ``flush`` reports the failures of every queued message, as
    librdkafka serves delivery reports to whichever thread flushes."""

    def __init__(self) -> None:
        self.queued: list[tuple[str, bytes, Callable[[Any, Any], None]]] = []
        self.lock = threading.Lock()
        self.failing_topics: set[str] = set()

    def produce(self, topic: str, value: bytes, key: bytes | None = None, *,
                on_delivery: Callable[[Any, Any], None], **_: Any) -> None:
        with self.lock:
            self.queued.append((topic, value, on_delivery))

    def flush(self, timeout: float = 30.0) -> int:
        with self.lock:
            queued, self.queued = self.queued, []
        for topic, value, report in queued:
            if value.startswith(b"fail") or topic in self.failing_topics:
                report("Local: Message timed out", FailedMessage(topic))
        return 0

    def poll(self, timeout: float = 0.0) -> int:
        return 0


@pytest.fixture
def log() -> KafkaLog:
    kafka_log = KafkaLog("127.0.0.1:9", extra={"log_level": 0})  # never contacted: the producer is the stand-in
    kafka_log._producer = StandInProducer()  # type: ignore[assignment]
    return kafka_log


def on_thread(fn: Callable[[], None]) -> BaseException | None:
    failure: list[BaseException] = []

    def run() -> None:
        try:
            fn()
        except BaseException as e:  # noqa: BLE001 - handed back to the test
            failure.append(e)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(10)
    return failure[0] if failure else None


def processor_result(log: KafkaLog, other: Callable[[], None], *, flushed_before: bool) -> BaseException | None:
    """A processor's thread appends a failing output; ``other`` runs on another thread (its
    flush serves the failure report); then the processor flushes: what that flush raised."""
    appended, other_done = threading.Event(), threading.Event()
    result: list[BaseException | None] = []

    def processor() -> None:
        if flushed_before:
            log.flush()
        log.append("reel.catalog", b"k", b"fail: the processor's output")
        appended.set()
        other_done.wait(10)
        try:
            log.flush()
            result.append(None)
        except EventLogError as e:
            result.append(e)

    thread = threading.Thread(target=processor)
    thread.start()
    appended.wait(10)
    assert on_thread(other) is None, "the other thread's flush neither raises for it nor takes it"
    other_done.set()
    thread.join(10)
    return result[0]


def test_a_flush_raises_for_its_own_threads_failure_not_for_another_flushers(log: KafkaLog) -> None:
    def another_processor() -> None:
        log.flush()
        log.append("reel.catalog", b"k", b"B's output")
        log.flush()

    error = processor_result(log, another_processor, flushed_before=True)
    assert isinstance(error, EventLogError) and "reel.catalog" in str(error)


def test_a_failure_before_the_appenders_first_flush_waits_for_that_flush(log: KafkaLog) -> None:
    # A processor's first batch: another thread's flush serves its failure report before the
    # processor itself has ever flushed. That flush must not take the failure, or the
    # processor would commit its input over a lost output.
    error = processor_result(log, log.flush, flushed_before=False)
    assert isinstance(error, EventLogError) and "reel.catalog" in str(error)


def test_a_thread_that_hands_off_has_its_failures_told_to_the_flush_that_comes(log: KafkaLog) -> None:
    # A gateway: its event loop appends, its publisher flushes in worker threads.
    log.hand_off_failures()
    log.append("reel.licenses", b"k", b"fail: an audit event")
    error = on_thread(log.flush)
    assert isinstance(error, EventLogError) and "reel.licenses" in str(error)
    assert on_thread(log.flush) is None, "told once"


def test_the_failures_of_a_thread_that_ended_without_flushing_go_to_the_next_flush(log: KafkaLog) -> None:
    assert on_thread(lambda: log.append("reel.keys", b"k", b"fail: appended, never flushed")) is None
    log._producer.flush()  # type: ignore[union-attr]  # the report arrives after the thread has ended
    error = on_thread(log.flush)
    assert isinstance(error, EventLogError) and "reel.keys" in str(error)


def test_a_thread_that_did_not_hand_off_keeps_its_failures_from_other_flushes(log: KafkaLog) -> None:
    log.append("reel.licenses", b"k", b"fail: appended here")
    assert on_thread(log.flush) is None
    with pytest.raises(EventLogError, match="reel.licenses"):
        log.flush()


async def test_the_gateway_publisher_learns_of_what_its_event_loop_appended(log: KafkaLog) -> None:
    # The publisher appends on the event loop and flushes in worker threads: it hands the
    # loop's failures off, so its flusher counts them instead of their waiting for ever.
    log._producer.failing_topics = {"reel.licenses"}  # type: ignore[union-attr]
    publisher = Publisher(log, EventCodec())
    publisher.start()
    publisher.emit([new_event("LicenseDenied", {
        "user_id": "u", "device_id": "d", "title_id": "t", "key_ids": [],
        "reason": "NO_ENTITLEMENT", "detail": "no"}, producer="test")])
    await publisher.settled()
    await publisher.stop()
    assert (publisher.delivered, publisher.failed) == (0, 1)
