"""Two deployments on one Kafka cluster, told apart by REEL_NAMESPACE.

Before namespaces, a transcode worker of one deployment took the other's jobs from the
shared ``reel.transcode.jobs``, found no master in its own bucket and failed that title.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from reelstream.config import Settings
from reelstream.errors import ConfigError
from reelstream.runtime import Runtime
from reelstream.stores.kafka import KafkaLog
from tests.support.events import grant

TOPIC = "reel.entitlements"
GROUP = "reel.workers.transcode"  # the same group name in both deployments, as by default


def deployment(tmp_path: Path, bootstrap: str, namespace: str) -> Runtime:
    return Runtime(Settings(data_dir=tmp_path / namespace, log_url=f"kafka://{bootstrap}", namespace=namespace))


def poll_for(consumer, seconds: float) -> list:  # type: ignore[no-untyped-def]
    got: list = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        got += consumer.poll(timeout=0.5)
    return got


def test_deployments_sharing_a_broker_never_read_each_others_events(
        kafka_bootstrap: str, unique: str, tmp_path: Path) -> None:
    a = deployment(tmp_path, kafka_bootstrap, f"a-{unique}")
    b = deployment(tmp_path, kafka_bootstrap, f"b-{unique}")
    reader_a, reader_b = a.log.consumer([TOPIC], GROUP), b.log.consumer([TOPIC], GROUP)
    a.publish(grant(f"user-{unique}", "e1"))

    got_a = poll_for(reader_a, 8)
    got_b = poll_for(reader_b, 3)
    assert [a.codec.decode(r.value)["user_id"] for r in got_a] == [f"user-{unique}"]
    assert got_a[0].topic == TOPIC  # the code sees logical names
    assert got_b == []
    reader_a.commit(got_a)
    reader_a.close()
    reader_b.close()

    # On the broker: A's topics and groups carry its prefix; B's copy of the topic is empty.
    raw = KafkaLog(kafka_bootstrap)
    assert sum(raw.end_offsets(f"a-{unique}.{TOPIC}").values()) == 1
    assert sum(raw.end_offsets(f"b-{unique}.{TOPIC}").values()) == 0
    assert sum(raw.committed(f"a-{unique}.{GROUP}", f"a-{unique}.{TOPIC}").values()) == 1
    assert raw.committed(f"b-{unique}.{GROUP}", f"b-{unique}.{TOPIC}") == {}
    for runtime in (a, b):
        runtime.close()
    raw.close()


@pytest.mark.parametrize("bad", [".hidden", "has space", "slash/ed", "x" * 201])
def test_a_namespace_kafka_cannot_name_is_refused_at_start(bad: str) -> None:
    with pytest.raises(ConfigError, match="REEL_NAMESPACE"):
        Settings(namespace=bad)
