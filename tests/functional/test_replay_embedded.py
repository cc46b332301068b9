"""`reel replay` on the embedded runtime: where it rebuilds, what it leaves behind, what it refuses."""

from __future__ import annotations

import logging
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from reelstream.cli import main
from reelstream.config import Settings
from reelstream.events.topics import DEAD_LETTER_TOPIC
from reelstream.processors.embedded import group_id
from reelstream.processors.playback.logic import WATCH_POSITIONS, WatchPositionProcessor
from reelstream.processors.replay import rebuild
from reelstream.processors.runner import ProcessorRunner
from reelstream.runtime import Runtime
from reelstream.stores.ports import Row
from reelstream.stores.sqlite_state import SqliteStateStore
from tests.support.events import heartbeat

USERS = 6


def live_state(data: Path) -> list[Row]:
    """Heartbeats applied by the live watch_positions processor, committed to the end of the
    log as `reel processors` leaves them; returns the live rows."""
    runtime = Runtime(Settings(data_dir=data))
    for i in range(USERS * 3):
        runtime.publish(heartbeat(f"u{i % USERS}", "t1", "tv", 1000 * i, i), flush=False)
    runtime.log.flush()
    processor = WatchPositionProcessor()
    runner = ProcessorRunner(processor, runtime.log, runtime.state, runtime.codec, "test")
    consumer = runtime.log.consumer(list(processor.topics), group_id=group_id(processor))
    while (records := consumer.poll(max_records=500, timeout=0.5)):
        runner.process(records)
        consumer.commit(records)
    consumer.close()
    rows = list(runtime.state.scan(WATCH_POSITIONS))
    runtime.close()
    assert len(rows) == USERS
    return rows


def reel_replay(data: Path, *args: str) -> int:
    return main(["replay", "watch_positions", "--data-dir", str(data), *args])


def live_rows(data: Path) -> list[Row]:
    store = SqliteStateStore(data / "state.db")
    try:
        return list(store.scan(WATCH_POSITIONS))
    finally:
        store.close()


def replay_files(data: Path) -> list[str]:
    return sorted(p.name for p in data.iterdir() if "replay" in p.name)


def test_a_verified_replay_removes_its_fresh_store_unless_kept(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "reel"
    live_state(data)
    assert reel_replay(data, "--verify") == 0
    out = capsys.readouterr().out
    assert "verified: rebuilt state equals the live state" in out and "removed the rebuilt store" in out
    assert replay_files(data) == []

    assert reel_replay(data, "--verify", "--keep") == 0
    out = capsys.readouterr().out
    [kept] = data.glob("state-replay_*.db")
    assert f"the rebuilt state is kept in sqlite://{kept}" in out
    rebuilt = SqliteStateStore(kept)
    assert len(list(rebuilt.scan(WATCH_POSITIONS))) == USERS
    rebuilt.close()
    # The command it prints removes the store, and nothing else.
    hint = re.search(r"remove it with: (.*)", out)
    assert hint is not None
    subprocess.run(hint.group(1), shell=True, check=True)
    assert replay_files(data) == [] and len(live_rows(data)) == USERS


def test_a_plain_rebuild_or_a_failed_verify_keeps_its_store_and_says_how_to_remove_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "reel"
    live_state(data)
    assert reel_replay(data) == 0
    assert len(replay_files(data)) == 1 and "remove it with: rm -f" in capsys.readouterr().out

    store = SqliteStateStore(data / "state.db")
    row = next(iter(store.scan(WATCH_POSITIONS)))
    row.values["position_ms"] += 1
    store.put(WATCH_POSITIONS, row)
    store.close()
    assert reel_replay(data, "--verify") == 1
    assert len(replay_files(data)) == 2  # the differing one is left to inspect
    assert "remove it with: rm -f" in capsys.readouterr().out


def test_replay_refuses_to_rebuild_into_the_live_state_however_it_is_spelt(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "reel"
    before = live_state(data)
    monkeypatch.chdir(tmp_path)
    for into in (f"sqlite://{data}/state.db", f"sqlite://{data}/../reel/state.db", "sqlite://reel/state.db"):
        for force in ((), ("--force",)):
            assert reel_replay(data, "--into", into, *force) == 2
            err = capsys.readouterr().err
            assert f"--into {into} is the live state store" in err and "leave --into out" in err
    assert live_rows(data) == before
    assert replay_files(data) == []


def test_replay_into_a_store_holding_the_views_rows_needs_force(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "reel"
    live = live_state(data)
    other = tmp_path / "other.db"
    stale = Row({**live[0].values, "user_id": "someone-else"}, {"reel.playback/0": 0})
    store = SqliteStateStore(other)
    store.ensure_views([WATCH_POSITIONS])
    store.put(WATCH_POSITIONS, stale)
    store.close()

    assert reel_replay(data, "--into", f"sqlite://{other}") == 2
    err = capsys.readouterr().err
    assert "already holds rows of watch_positions" in err and "--force" in err
    store = SqliteStateStore(other)
    assert list(store.scan(WATCH_POSITIONS)) == [stale]
    store.close()

    assert reel_replay(data, "--into", f"sqlite://{other}", "--force", "--verify") == 0
    store = SqliteStateStore(other)
    assert list(store.scan(WATCH_POSITIONS)) == live  # rebuilt over the stale rows
    store.close()
    assert other.exists()  # a store the operator named is never removed


def test_replay_skips_bad_records_without_dead_lettering_them_again(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    runtime = Runtime(Settings(data_dir=tmp_path / "reel"))
    runtime.log.append("reel.playback", b"u1", b"not avro at all")
    runtime.publish(heartbeat("u1", "t1", "tv", 42_000, 0))
    fresh = SqliteStateStore(tmp_path / "fresh.db")
    with caplog.at_level(logging.WARNING, logger="reelstream.processors.runner"):
        report = rebuild(WatchPositionProcessor(), runtime.log, fresh, runtime.codec)
    assert report.records == 2 and report.rows["watch_positions"] == 1
    assert report.skipped == 1  # the command's summary says how many, beside the warnings
    # Nothing written to the live log: the live processor dead-letters the record, not the replay.
    assert sum(runtime.log.end_offsets(DEAD_LETTER_TOPIC).values()) == 0
    messages = [r.getMessage() for r in caplog.records]
    assert not any("dead-lettering" in m for m in messages), messages
    assert any(re.match(r"skipping reel\.playback/\d+@0 in the replay \(the live processor dead-lettered it\): "
                        r"undecodable", m) for m in messages), messages
    fresh.close()
    runtime.close()


def test_an_interrupted_replay_resumes_where_it_stopped(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "reel"
    runtime = Runtime(Settings(data_dir=data))
    beats = 3_500  # several of the rebuild's 1,000-record polls
    for i in range(beats):
        runtime.publish(heartbeat(f"u{i % 40}", "t1", "tv", 1000 * i, i), flush=False)
    runtime.log.flush()
    runtime.close()

    from reelstream.processors import replay

    real_rebuild = replay.rebuild

    def interrupted(*args: Any, **kwargs: Any) -> replay.ReplayReport:
        args = args[:4]  # the command's progress callback, replaced by one that presses Ctrl-C
        calls = [0]

        def ctrl_c_on_the_second_batch(done: int, total: int) -> None:
            calls[0] += 1
            if calls[0] == 2:
                raise KeyboardInterrupt
        return real_rebuild(*args, ctrl_c_on_the_second_batch, **kwargs)

    monkeypatch.setattr(replay, "rebuild", interrupted)
    assert reel_replay(data) == 130  # Ctrl-C
    monkeypatch.undo()
    captured = capsys.readouterr()
    [kept] = data.glob("state-replay_*.db")
    assert f"run the same command --into sqlite://{kept} --resume" in captured.err
    assert f"the rebuilt state is kept in sqlite://{kept}" in captured.out

    assert reel_replay(data, "--into", f"sqlite://{kept}", "--resume") == 0
    out = capsys.readouterr().out
    resumed = re.search(r"from (\d+) records \(resumed after (\d+)\)", out)
    assert resumed and int(resumed[1]) < beats and int(resumed[1]) + int(resumed[2]) == beats, out
    full = tmp_path / "full.db"
    assert reel_replay(data, "--into", f"sqlite://{full}") == 0
    a, b = SqliteStateStore(kept), SqliteStateStore(full)
    processor = WatchPositionProcessor()
    assert replay.diff_states(processor, a, b) == [] and len(list(a.scan(WATCH_POSITIONS))) == 40
    a.close()
    b.close()


def test_resume_needs_an_interrupted_rebuild_in_the_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "reel"
    live_state(data)
    empty = tmp_path / "empty.db"
    assert reel_replay(data, "--into", f"sqlite://{empty}", "--resume") == 2
    assert "holds no interrupted rebuild of watch_positions to resume" in capsys.readouterr().err
    assert reel_replay(data, "--resume") == 2
    assert "--resume needs --into URL" in capsys.readouterr().err


def test_a_rebuild_stopped_by_a_failing_store_says_how_to_go_on(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from reelstream.errors import StateStoreError
    from reelstream.processors import replay

    data = tmp_path / "reel"
    live_state(data)
    real_rebuild = replay.rebuild

    def failing(*args: Any, **kwargs: Any) -> replay.ReplayReport:
        def store_fails(done: int, total: int) -> None:
            raise StateStoreError("cassandra://10.0.0.7:9042/reelstream: write timed out")
        return real_rebuild(*args[:4], store_fails, **kwargs)

    monkeypatch.setattr(replay, "rebuild", failing)
    assert reel_replay(data) == 2
    monkeypatch.undo()
    err = capsys.readouterr().err
    [kept] = data.glob("state-replay_*.db")
    assert f"stopped; to go on from where it stopped, run the same command --into sqlite://{kept} --resume" in err
    assert "reel replay: cassandra://10.0.0.7:9042/reelstream: write timed out" in err
    assert reel_replay(data, "--into", f"sqlite://{kept}", "--resume", "--verify") == 0


def test_records_appended_during_an_interrupted_rebuild_are_applied_when_it_resumes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The rebuild reads to the end it saw at its start; a poll may also bring records appended
    # since, which it leaves alone. Its saved progress went past them, so the resumed rebuild,
    # whose end covers them, never applied them.
    runtime = Runtime(Settings(data_dir=tmp_path / "reel"))
    for i in range(5):
        runtime.publish(heartbeat("u1", "t1", "tv", 1000 * i, i), flush=False)
    runtime.log.flush()
    real_consumer = runtime.log.consumer

    def consumer_after_more_beats(*args: Any, **kwargs: Any) -> Any:
        for i in range(5, 8):  # after the rebuild read the ends, before its first poll
            runtime.publish(heartbeat("u1", "t1", "tv", 1000 * i, i), flush=False)
        runtime.log.flush()
        monkeypatch.setattr(runtime.log, "consumer", real_consumer)
        return real_consumer(*args, **kwargs)

    monkeypatch.setattr(runtime.log, "consumer", consumer_after_more_beats)

    def ctrl_c(done: int, total: int) -> None:
        raise KeyboardInterrupt

    fresh = SqliteStateStore(tmp_path / "fresh.db")
    processor = WatchPositionProcessor()
    with pytest.raises(KeyboardInterrupt):
        rebuild(processor, runtime.log, fresh, runtime.codec, ctrl_c)
    row = fresh.get(WATCH_POSITIONS, ("u1", "t1", "tv"))
    assert row is not None and row.values["position_ms"] == 4000  # to the end it saw
    report = rebuild(processor, runtime.log, fresh, runtime.codec, resume=True)
    assert (report.resumed_at, report.records) == (5, 3)
    row = fresh.get(WATCH_POSITIONS, ("u1", "t1", "tv"))
    assert row is not None and row.values["position_ms"] == 7000
    fresh.close()
    runtime.close()
