"""`reel replay` on Kafka and Cassandra: a log that retention has trimmed, and the keyspaces it makes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient

from reelstream.cli import main
from reelstream.config import Settings
from reelstream.processors.embedded import group_id
from reelstream.processors.playback.logic import WATCH_POSITIONS, WatchPositionProcessor
from reelstream.processors.replay import rebuild
from reelstream.processors.runner import ProcessorRunner
from reelstream.runtime import Runtime
from reelstream.stores.namespaced import NamespacedLog
from reelstream.stores.sqlite_state import SqliteStateStore
from tests.support.events import heartbeat
from tests.unit.gateways.support import drop_keyspace

pytestmark = pytest.mark.integration

USERS = 11


@pytest.fixture
def runtime(kafka_bootstrap: str, tmp_path: Path, unique: str) -> Iterator[Runtime]:
    rt = Runtime(Settings(data_dir=tmp_path, log_url=f"kafka://{kafka_bootstrap}", namespace=f"ns-{unique}",
                          group_prefix=f"it-{unique}"))
    for i in range(USERS):
        rt.publish(heartbeat(f"u{i}", "t1", "tv", 1000 * (i + 1), i), flush=False)
    rt.log.flush()
    yield rt
    rt.close()


@pytest.mark.timeout(60)  # the old loop never ended: it waited for a record of the emptied partition
def test_rebuild_ends_when_retention_emptied_a_partition(runtime: Runtime, kafka_bootstrap: str,
                                                         tmp_path: Path) -> None:
    log = runtime.log
    assert isinstance(log, NamespacedLog)
    ends = log.end_offsets("reel.playback")
    emptied = next(p for p, end in ends.items() if end > 0)
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    deleted = TopicPartition(log.physical("reel.playback"), emptied, ends[emptied])
    for future in admin.delete_records([deleted]).values():
        future.result(timeout=30)

    seen: list[tuple[int, int]] = []
    fresh = SqliteStateStore(tmp_path / "fresh.db")
    report = rebuild(WatchPositionProcessor(), log, fresh, runtime.codec,
                     progress=lambda done, total: seen.append((done, total)))
    kept = USERS - ends[emptied]
    assert report.records == kept and seen[-1] == (kept, kept)
    assert report.rows["watch_positions"] == kept
    fresh.close()


def keyspaces(cassandra_contact: tuple[list[str], int], prefix: str) -> list[str]:
    from cassandra.cluster import Cluster

    hosts, port = cassandra_contact
    cluster = Cluster(contact_points=hosts, port=port, protocol_version=5, connect_timeout=5)
    try:
        rows = cluster.connect().execute("SELECT keyspace_name FROM system_schema.keyspaces")
        return sorted(r.keyspace_name for r in rows if r.keyspace_name.startswith(prefix))
    finally:
        cluster.shutdown()


def test_replay_drops_the_keyspace_it_verified_and_never_rebuilds_into_the_live_one(
        kafka_bootstrap: str, cassandra_contact: tuple[list[str], int], unique: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    hosts, port = cassandra_contact
    live_keyspace = f"reel_it_{unique}"
    settings = Settings(data_dir=tmp_path, log_url=f"kafka://{kafka_bootstrap}", namespace=f"ns-{unique}",
                        group_prefix=f"it-{unique}", state_url=f"cassandra://{','.join(hosts)}:{port}/{live_keyspace}")
    for name, value in (("REEL_LOG_URL", settings.log_url), ("REEL_STATE_URL", settings.state_url),
                        ("REEL_NAMESPACE", settings.namespace), ("REEL_GROUP_PREFIX", settings.group_prefix)):
        monkeypatch.setenv(name, value)
    runtime = Runtime(settings)
    try:
        for i in range(USERS):
            runtime.publish(heartbeat(f"u{i}", "t1", "tv", 1000 * (i + 1), i), flush=False)
        runtime.log.flush()
        apply_live(runtime)
        live = list(runtime.state.scan(WATCH_POSITIONS))
        assert len(live) == USERS

        assert main(["replay", "watch_positions", "--verify"]) == 0
        assert "removed the rebuilt store" in capsys.readouterr().out
        assert keyspaces(cassandra_contact, live_keyspace) == [live_keyspace]

        # The live keyspace through another name of its contact point: refused, rows intact.
        into = f"cassandra://localhost:{port}/{live_keyspace}"
        assert main(["replay", "watch_positions", "--into", into, "--force"]) == 2
        assert "is the live state store" in capsys.readouterr().err
        assert list(runtime.state.scan(WATCH_POSITIONS)) == live
    finally:
        runtime.close()
        for keyspace in keyspaces(cassandra_contact, live_keyspace):
            drop_keyspace(f"cassandra://{hosts[0]}:{port}/{keyspace}")


def apply_live(runtime: Runtime) -> None:
    """The live processor, caught up and committed as `reel processors` leaves it."""
    processor = WatchPositionProcessor()
    runner = ProcessorRunner(processor, runtime.log, runtime.state, runtime.codec, "test")
    consumer = runtime.log.consumer(list(processor.topics), group_id=group_id(processor, runtime.settings.group_prefix))
    ends = runtime.log.end_offsets("reel.playback")
    try:
        while runtime.log.committed(group_id(processor, runtime.settings.group_prefix), "reel.playback") != {
                p: end for p, end in ends.items() if end}:
            records = consumer.poll(max_records=500, timeout=1.0)
            runner.process(records)
            consumer.commit(records)
    finally:
        consumer.close()


@pytest.mark.timeout(120)
def test_an_interrupted_rebuild_resumes_from_its_positions_on_kafka(runtime: Runtime, tmp_path: Path) -> None:
    # The reader seeks each partition to where the interrupted rebuild stopped, before its first poll.
    for i in range(2_500):
        runtime.publish(heartbeat(f"v{i % 30}", "t1", "tv", 1000 * i, i), flush=False)
    runtime.log.flush()
    processor, target = WatchPositionProcessor(), tmp_path / "resumed.db"

    def ctrl_c(done: int, total: int) -> None:
        raise KeyboardInterrupt

    fresh = SqliteStateStore(target)
    with pytest.raises(KeyboardInterrupt):
        rebuild(processor, runtime.log, fresh, runtime.codec, progress=ctrl_c)
    first = sum(1 for _ in fresh.scan(WATCH_POSITIONS))
    report = rebuild(processor, runtime.log, fresh, runtime.codec, resume=True)
    whole = SqliteStateStore(tmp_path / "whole.db")
    full = rebuild(processor, runtime.log, whole, runtime.codec)
    assert 0 < report.resumed_at and report.resumed_at + report.records == full.records == 2_500 + USERS
    assert first > 0 and report.rows == full.rows
    assert list(fresh.scan(WATCH_POSITIONS)) == list(whole.scan(WATCH_POSITIONS))
    fresh.close()
    whole.close()
