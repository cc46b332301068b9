"""Which state URLs `reel replay --into` takes for the live store, and how it says to remove a kept one."""

from __future__ import annotations

from pathlib import Path

import pytest

from reelstream.processors.replay import ReplayRefused, refuse_live_target, removal_hint, same_store


@pytest.mark.parametrize("into", [
    "sqlite://{d}/state.db", "sqlite://{d}/./x/../state.db", "sqlite://localhost{d}/state.db", "sqlite://rel/state.db",
])
def test_one_sqlite_file_however_it_is_spelt(into: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    live = f"sqlite://{tmp_path}/rel/state.db"
    assert same_store(into.format(d=tmp_path / "rel"), live)


def test_a_linked_sqlite_path_is_the_same_file(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    assert same_store(f"sqlite://{tmp_path}/link/state.db", f"sqlite://{tmp_path}/real/state.db")


@pytest.mark.parametrize(("into", "same"), [
    ("cassandra://127.0.0.1:19042/reelstream", True),
    ("cassandra://localhost:19042/reelstream", True),  # resolves to the live contact point
    ("cassandra://10.9.9.9,127.0.0.1:19042/reelstream", True),  # one contact point in common
    ("cassandra://127.0.0.1:19042/REELSTREAM", True),  # unquoted CQL names are case-insensitive
    ("cassandra://127.0.0.1:19042/reelstream_replay_1", False),
    ("cassandra://127.0.0.1:9042/reelstream", False),  # another node or cluster on this machine
    ("sqlite:///tmp/reelstream", False),
])
def test_one_cassandra_keyspace_through_a_contact_point_in_common(into: str, same: bool) -> None:
    assert same_store(into, "cassandra://127.0.0.1:19042/reelstream") is same


def test_the_refusal_names_the_live_store_and_the_way_out() -> None:
    live = "cassandra://127.0.0.1:19042/reelstream"
    with pytest.raises(ReplayRefused, match=r"--into cassandra://localhost:19042/reelstream is the live state "
                                            r"store \(cassandra://127.0.0.1:19042/reelstream\).*leave --into out"):
        refuse_live_target("cassandra://localhost:19042/reelstream", live)
    refuse_live_target("cassandra://localhost:19042/elsewhere", live)


def test_the_removal_hint_is_a_command_for_that_store_only() -> None:
    assert removal_hint("sqlite:///data/my dir/state-replay_1.db") == (
        "rm -f '/data/my dir/state-replay_1.db' '/data/my dir/state-replay_1.db-wal' "
        "'/data/my dir/state-replay_1.db-shm'")
    assert removal_hint("cassandra://10.0.0.5,10.0.0.6:9042/reelstream_replay_1") == (
        "cqlsh 10.0.0.5 9042 -e 'DROP KEYSPACE reelstream_replay_1'")
