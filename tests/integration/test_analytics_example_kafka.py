"""The README's analytics consumer, run as written against Kafka: it reads every event of a
topic, reports a record it cannot decode and reads on, and a second run starts where the
first one committed (nothing read twice, nothing skipped)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from reelstream.events.codec import EventCodec
from tests.support.events import heartbeat

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def run_example(bootstrap: str, topic: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "examples/analytics_consumer.py", bootstrap, topic], cwd=REPO, check=False,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.timeout(300)
def test_the_example_reads_past_a_bad_record_and_commits_what_it_read(kafka_bootstrap: str, unique: str) -> None:
    topic = f"analytics-{unique}"
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(timeout=30)
    producer, codec = Producer({"bootstrap.servers": kafka_bootstrap}), EventCodec()
    for i in range(3):
        producer.produce(topic, key=b"u1", value=codec.encode(heartbeat("u1", "t1", "tv", 1000 * i, i)))
    producer.produce(topic, key=b"u1", value=b"\xc3\x01" + b"\x11" * 8 + b"a newer schema's body")
    for i in range(3, 6):
        producer.produce(topic, key=b"u1", value=codec.encode(heartbeat("u1", "t1", "tv", 1000 * i, i)))
    producer.flush(30)

    first = run_example(kafka_bootstrap, topic)
    assert first.returncode == 0, first.stderr[-2000:]
    assert first.stdout.count("reelstream.events.PlaybackHeartbeat") == 6
    assert f"skipped {topic}/0@3: not a ReelStream event, or a schema newer" in first.stderr
    again = run_example(kafka_bootstrap, topic)
    assert again.returncode == 0 and again.stdout == "", again.stderr[-2000:]
