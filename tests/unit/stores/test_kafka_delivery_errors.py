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

    def produce(self, topic: str, value: bytes, key: bytes | None = None, *,
                on_delivery: Callable[[Any, Any], None], **_: Any) -> None:
        with self.lock:
            self.queued.append((topic, value, on_delivery))

    def flush(self, timeout: float = 30.0) -> int:
        with self.lock:
            queued, self.queued = self.queued, []
        for topic, value, report in queued:
            if value.startswith(b"fail"):
                report("Local: Message timed out", FailedMessage(topic))
        return 0

    def poll(self, timeout: float = 0.0) -> int:
        return 0


@pytest.fixture
def log() -> KafkaLog:
    kafka_log = KafkaLog("127.0.0.1:9")  # never contacted: the producer is the stand-in
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


def test_a_flush_raises_for_its_own_threads_failure_not_for_another_flushers(log: KafkaLog) -> None:
    a_appended, b_done = threading.Event(), threading.Event()
    a_result: list[BaseException | None] = []

    def thread_a() -> None:
        log.flush()  # a processor's thread: it flushes its own batches
        log.append("reel.catalog", b"k", b"fail: A's output")
        a_appended.set()
        b_done.wait(10)
        try:
            log.flush()
            a_result.append(None)
        except EventLogError as e:
            a_result.append(e)

    a = threading.Thread(target=thread_a)
    a.start()
    a_appended.wait(10)

    def thread_b() -> None:
        log.flush()
        log.append("reel.catalog", b"k", b"B's output")
        log.flush()  # serves A's failure report too, and must neither raise for it nor take it

    assert on_thread(thread_b) is None
    b_done.set()
    a.join(10)
    assert isinstance(a_result[0], EventLogError) and "reel.catalog" in str(a_result[0])


def test_an_appender_that_never_flushes_has_its_failures_told_to_the_flush_that_comes(log: KafkaLog) -> None:
    # A gateway: its event loop appends, its publisher flushes in worker threads.
    log.append("reel.licenses", b"k", b"fail: an audit event")
    error = on_thread(log.flush)
    assert isinstance(error, EventLogError) and "reel.licenses" in str(error)
    assert on_thread(log.flush) is None, "told once"
