"""The same adapters against containers, for machines with a Docker engine.

Where no engine runs (this project's CI), these skip cleanly: the servers started by
infra/local/ cover the real-adapter contract there.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from reelstream.events.topics import Cleanup, Topic
from reelstream.stores.kafka import KafkaLog


def _docker_engine() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10, check=False).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


pytestmark = pytest.mark.skipif(not _docker_engine(), reason="no Docker engine here; testcontainers needs one")


def test_kafka_log_on_a_kafka_container() -> None:
    from testcontainers.kafka import KafkaContainer

    with KafkaContainer("apache/kafka:4.1.2") as kafka:
        log = KafkaLog(kafka.get_bootstrap_server())
        topic = Topic("tc.test", "k", 2, Cleanup.DELETE, -1, frozenset(), "test")
        log.ensure_topics([topic])
        for i in range(10):
            log.append(topic.name, f"k{i}".encode(), str(i).encode())
        log.flush()
        reader = log.consumer([topic.name], group_id=None)
        seen = []
        for _ in range(20):
            seen += reader.poll(timeout=1.0)
            if len(seen) == 10:
                break
        reader.close()
        assert sorted(int(r.value) for r in seen) == list(range(10))


def test_cassandra_state_on_a_cassandra_container() -> None:
    from testcontainers.cassandra import CassandraContainer

    from reelstream.processors.playback.logic import WATCH_POSITIONS
    from reelstream.stores.cassandra import CassandraStateStore
    from reelstream.stores.ports import Row

    with CassandraContainer("cassandra:5.0") as cassandra:
        host, port = cassandra.get_container_host_ip(), int(cassandra.get_exposed_port(9042))
        store = CassandraStateStore([host], port, "reel_tc")
        store.ensure_views([WATCH_POSITIONS])
        row = {"user_id": "u", "title_id": "t", "device_type": "tv", "position_ms": 5, "event_time_ms": 1,
               "state": "PLAYING", "session_id": "s", "profile_id": "p", "device_id": "d"}
        store.put(WATCH_POSITIONS, Row(row, {"reel.playback/0": 3}))
        assert store.get(WATCH_POSITIONS, ("u", "t", "tv")).values["position_ms"] == 5  # type: ignore[union-attr]
        store.close()
