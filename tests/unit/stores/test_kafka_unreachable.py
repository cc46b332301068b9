"""A Kafka that does not answer is an EventLogError naming the broker and what to check,
not librdkafka's KafkaException: the CLI prints the one and a traceback for the other."""

from __future__ import annotations

import pytest

from reelstream.errors import EventLogError
from reelstream.events.topics import TOPICS
from reelstream.stores.kafka import KafkaLog


@pytest.fixture
def unreachable() -> KafkaLog:
    log = KafkaLog("127.0.0.1:1", extra={"log_level": 0})  # nothing listens on port 1
    log.metadata_timeout_s = 1.0
    return log


def test_creating_topics_on_an_unreachable_broker_names_it(unreachable: KafkaLog) -> None:
    with pytest.raises(EventLogError, match=r"Kafka at 127\.0\.0\.1:1 did not answer.*is the broker running"):
        unreachable.ensure_topics(TOPICS[:1])


def test_reading_a_topics_partitions_on_an_unreachable_broker_names_it(unreachable: KafkaLog) -> None:
    with pytest.raises(EventLogError, match=r"Kafka at 127\.0\.0\.1:1 did not answer"):
        unreachable.partitions("reel.catalog")
