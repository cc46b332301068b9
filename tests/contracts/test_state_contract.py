"""The StateStore contract, run against SQLite and Cassandra with the same assertions."""

from __future__ import annotations

import dataclasses
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from reelstream.errors import StateStoreError
from reelstream.stores.ports import Column, Record, Row, StateStore, ViewSpec

if TYPE_CHECKING:  # tests/contracts is not a package; the fixture itself comes from conftest
    from tests.contracts.conftest import StateHarness

COLUMNS = {
    "user_id": Column.TEXT,
    "video_id": Column.TEXT,
    "n": Column.INT,
    "position_ms": Column.BIGINT,
    "ratio": Column.DOUBLE,
    "finished": Column.BOOLEAN,
    "extra": Column.JSON,
    "title": Column.TEXT,
}


@pytest.fixture
def spec(state: StateHarness) -> ViewSpec:
    """A fresh view per test (the Cassandra keyspace is shared by the session)."""
    view = ViewSpec(
        name=f"watch_{uuid.uuid4().hex[:10]}",
        partition_key=("user_id",),
        clustering_key=("video_id", "n"),
        columns=dict(COLUMNS),
        query="watch positions of a user, by video",
    )
    state.store.ensure_views([view])
    return view


def row(user: str, video: str, n: int = 0, **values: Any) -> Row:
    return Row(values={"user_id": user, "video_id": video, "n": n, **values})


def full(user: str, video: str, n: int = 0, **values: Any) -> dict[str, Any]:
    """What a row reads back as: every column, the unset ones None."""
    return dict.fromkeys(COLUMNS) | {"user_id": user, "video_id": video, "n": n, **values}


def released_together(racers: int, write: Callable[[int], bool]) -> list[bool]:
    """``write(i)`` in ``racers`` threads released by one barrier, so their writes overlap."""
    start = threading.Barrier(racers)
    won = [False] * racers

    def race(i: int) -> None:
        start.wait()
        won[i] = write(i)

    threads = [threading.Thread(target=race, args=(i,)) for i in range(racers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return won


def test_get_missing_returns_none(state: StateHarness, spec: ViewSpec) -> None:
    assert state.store.get(spec, ("nobody", "v", 0)) is None


def test_every_column_type_round_trips(state: StateHarness, spec: ViewSpec) -> None:
    values = {
        "position_ms": 2**40 + 7,
        "ratio": 0.125,
        "finished": True,
        "title": "Été — 映画",
        "extra": {"tags": ["a", "b"], "nested": {"x": 1, "y": None}, "pi": 3.5},
    }
    state.store.put(spec, row("u1", "v1", -(2**31), **values))

    got = state.store.get(spec, ("u1", "v1", -(2**31)))

    assert got is not None and got.values == full("u1", "v1", -(2**31), **values)
    assert type(got.values["ratio"]) is float and type(got.values["position_ms"]) is int
    assert got.values["finished"] is True


def test_none_and_absent_values_read_back_as_none(state: StateHarness, spec: ViewSpec) -> None:
    state.store.put(spec, row("u1", "v1", title=None, finished=False, extra=[]))

    got = state.store.get(spec, ("u1", "v1", 0))

    assert got is not None and got.values == full("u1", "v1", finished=False, extra=[])
    assert got.values["finished"] is False


def test_double_accepts_an_int_and_reads_back_a_float(state: StateHarness, spec: ViewSpec) -> None:
    state.store.put(spec, row("u1", "v1", ratio=2))
    got = state.store.get(spec, ("u1", "v1", 0))
    assert got is not None and got.values["ratio"] == 2.0 and type(got.values["ratio"]) is float


def test_put_replaces_the_whole_row(state: StateHarness, spec: ViewSpec) -> None:
    state.store.put(spec, row("u1", "v1", position_ms=10, title="first"))
    state.store.put(spec, row("u1", "v1", position_ms=20))

    got = state.store.get(spec, ("u1", "v1", 0))

    assert got is not None and got.values == full("u1", "v1", position_ms=20)
    assert len(state.store.query(spec, ("u1",))) == 1


def test_query_returns_one_partition_in_clustering_order(
    state: StateHarness, spec: ViewSpec
) -> None:
    # Byte order for text ("B" < "a" < "é"), numeric order for ints (negative first).
    keys = [("é", 0), ("a", 5), ("B", 1), ("a", -3), ("a", 10)]
    for video, n in keys:
        state.store.put(spec, row("u1", video, n, position_ms=n))
    state.store.put(spec, row("u2", "a", 0))

    rows = state.store.query(spec, ("u1",))

    assert [(r.values["video_id"], r.values["n"]) for r in rows] == [
        ("B", 1),
        ("a", -3),
        ("a", 5),
        ("a", 10),
        ("é", 0),
    ]
    assert all(r.values["user_id"] == "u1" for r in rows)
    assert state.store.query(spec, ("nobody",)) == []


def test_put_many_writes_every_row_and_refuses_a_bad_one(state: StateHarness, spec: ViewSpec) -> None:
    state.store.put_many([(spec, row("u1", "a", 1, position_ms=5)), (spec, row("u1", "b", 2)),
                          (spec, row("u2", "a", 0))])
    state.store.put_many([])

    assert [r.values["video_id"] for r in state.store.query(spec, ("u1",))] == ["a", "b"]
    assert state.store.get(spec, ("u1", "a", 1)).values["position_ms"] == 5  # type: ignore[union-attr]
    assert len(state.store.query(spec, ("u2",))) == 1
    with pytest.raises(StateStoreError):
        state.store.put_many([(spec, Row({"user_id": "u3"}))])


def test_query_many_answers_each_partition_in_order(state: StateHarness, spec: ViewSpec) -> None:
    for user, video, n in [("u1", "b", 2), ("u1", "a", 1), ("u2", "a", 0), ("u3", "z", 9)]:
        state.store.put(spec, row(user, video, n))

    answers = state.store.query_many(spec, [("u2",), ("nobody",), ("u1",), ("u2",)])

    assert [[(r.values["user_id"], r.values["video_id"]) for r in rows] for rows in answers] == [
        [("u2", "a")], [], [("u1", "a"), ("u1", "b")], [("u2", "a")]]
    assert state.store.query_many(spec, []) == []
    with pytest.raises(StateStoreError):
        state.store.query_many(spec, [("u1",), ("u1", "extra")])


def test_scan_returns_every_row_across_pages(state: StateHarness, spec: ViewSpec) -> None:
    expected = {(f"u{i % 7}", f"v{i}", i) for i in range(130)}
    for user, video, n in expected:
        state.store.put(spec, row(user, video, n))

    scanned = {spec.key_of(r.values) for r in state.store.scan(spec)}

    assert scanned == expected


def test_applied_positions_round_trip(state: StateHarness, spec: ViewSpec) -> None:
    applied = {"playback-events/3": 41, "catalog-events/0": 7}
    state.store.put(spec, Row(values=row("u1", "v1").values, applied=applied))

    got = state.store.get(spec, ("u1", "v1", 0))

    assert got is not None and got.applied == applied
    seen = Record("playback-events", 3, 41, None, b"", 0)
    assert got.has_applied(seen)
    assert not got.has_applied(seen._replace(offset=42))
    assert not got.has_applied(seen._replace(partition=4))
    assert state.store.get(spec, ("u1", "v1", 0)) == got
    state.store.put(spec, row("u1", "v2"))
    assert state.store.get(spec, ("u1", "v2", 0)) == Row(values=full("u1", "v2"), applied={})


def test_ensure_views_is_idempotent_and_adds_columns(state: StateHarness, spec: ViewSpec) -> None:
    state.store.put(spec, row("u1", "v1", position_ms=5))
    state.store.ensure_views([spec])
    other = state.reopen()  # as another process would, starting later
    other.ensure_views([spec])

    grown = dataclasses.replace(spec, columns={**spec.columns, "rating": Column.INT})
    other.ensure_views([grown])
    state.store.ensure_views([grown])  # the first process catches up: already there, no error

    old = state.store.get(grown, ("u1", "v1", 0))
    assert old is not None and old.values == full("u1", "v1", position_ms=5, rating=None)
    state.store.put(grown, row("u1", "v2", rating=4))
    got = other.get(grown, ("u1", "v2", 0))
    assert got is not None and got.values["rating"] == 4
    # The old spec still reads the grown table: it just does not see the new column.
    narrow = state.store.get(spec, ("u1", "v2", 0))
    assert narrow is not None and "rating" not in narrow.values


def test_changing_a_views_key_is_refused(state: StateHarness, spec: ViewSpec) -> None:
    rekeyed = dataclasses.replace(spec, clustering_key=("n", "video_id"))
    with pytest.raises(StateStoreError, match="key"):
        state.store.ensure_views([rekeyed])


def test_reading_a_view_never_ensured_is_a_state_store_error(state: StateHarness) -> None:
    never = ViewSpec(
        f"never_{uuid.uuid4().hex[:8]}", ("user_id",), (), {"user_id": Column.TEXT}, "none"
    )
    with pytest.raises(StateStoreError):
        state.store.get(never, ("u1",))


def test_truncate_empties_the_view(state: StateHarness, spec: ViewSpec) -> None:
    for i in range(3):
        state.store.put(spec, row("u1", f"v{i}"))

    state.store.truncate(spec)

    assert list(state.store.scan(spec)) == []
    assert state.store.get(spec, ("u1", "v0", 0)) is None


@pytest.mark.parametrize(
    "values",
    [
        {"n": "1"},  # text in an int column
        {"n": 2**31},  # beyond Cassandra's 32-bit int
        {"position_ms": 2**63},
        {"position_ms": True},  # a bool is not a number here
        {"ratio": "0.5"},
        {"ratio": float("nan")},  # SQLite would store NULL
        {"finished": 1},
        {"title": 42},
        {"extra": {1, 2}},  # not JSON
        {"user_id": None},  # keys are required
        {"unknown": 1},
    ],
    ids=lambda v: next(iter(v)) + "=" + repr(next(iter(v.values())))[:12],
)
def test_a_value_of_the_wrong_type_is_refused(
    state: StateHarness,
    spec: ViewSpec,
    values: dict[str, Any],
) -> None:
    bad = Row(values={**row("u1", "v1").values, **values})
    with pytest.raises(StateStoreError):
        state.store.put(spec, bad)
    assert state.store.scan(spec) is not None and list(state.store.scan(spec)) == []


def test_a_key_of_the_wrong_shape_is_refused(state: StateHarness, spec: ViewSpec) -> None:
    with pytest.raises(StateStoreError):
        state.store.get(spec, ("u1", "v1"))
    with pytest.raises(StateStoreError):
        state.store.get(spec, ("u1", "v1", "zero"))
    with pytest.raises(StateStoreError):
        state.store.query(spec, ("u1", "v1"))


def test_concurrent_writers_from_threads(state: StateHarness, spec: ViewSpec) -> None:
    def write(worker: int) -> None:
        for i in range(20):
            state.store.put(spec, row(f"u{worker}", f"v{i}", i, position_ms=worker))

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert sum(1 for _ in state.store.scan(spec)) == 80
    assert [r.values["n"] for r in state.store.query(spec, ("u3",))] == sorted(range(20), key=str)


def test_put_if_absent_creates_only_a_missing_row(state: StateHarness, spec: ViewSpec) -> None:
    applied = {"t/0": 3}
    assert state.store.put_if_absent(spec, Row(row("u1", "v1", title="first").values, applied))
    assert not state.store.put_if_absent(spec, row("u1", "v1", title="second", position_ms=9))

    got = state.store.get(spec, ("u1", "v1", 0))
    assert got == Row(full("u1", "v1", title="first"), applied)
    assert state.store.put_if_absent(spec, row("u1", "v1", 1))  # another clustering key: another row
    with pytest.raises(StateStoreError):
        state.store.put_if_absent(spec, Row({**row("u1", "v2").values, "n": "zero"}))


def test_put_if_absent_has_exactly_one_winner_among_racing_threads(
    state: StateHarness, spec: ViewSpec
) -> None:
    # Every thread on its own store instance (another process, for Cassandra another
    # client), all released at once so their writes overlap.
    racers = 8
    stores = [state.reopen() for _ in range(racers)]
    won = released_together(racers, lambda i: stores[i].put_if_absent(spec, row("u1", "v1", title=f"racer {i}")))
    assert won.count(True) == 1
    got = state.store.get(spec, ("u1", "v1", 0))
    assert got is not None and got.values["title"] == f"racer {won.index(True)}"


def test_put_if_replaces_the_row_only_when_the_column_matches(
    state: StateHarness, spec: ViewSpec
) -> None:
    extra = {"profiles": [{"id": "p1", "name": "É"}], "n": 1.5}
    state.store.put(spec, row("u1", "v1", title="a", position_ms=5, extra=extra))

    assert not state.store.put_if(spec, row("u1", "v1", title="x"), "title", "b")
    assert not state.store.put_if(spec, row("u1", "v1", title="x"), "extra", {"n": 1.5})
    assert state.store.get(spec, ("u1", "v1", 0)) == Row(full("u1", "v1", title="a", position_ms=5, extra=extra))

    # A JSON value read back matches what is stored; the whole row is replaced.
    read = state.store.get(spec, ("u1", "v1", 0))
    assert read is not None
    assert state.store.put_if(spec, Row(row("u1", "v1", title="b").values, {"t/1": 2}),
                              "extra", read.values["extra"])
    assert state.store.get(spec, ("u1", "v1", 0)) == Row(full("u1", "v1", title="b"), {"t/1": 2})
    assert state.store.put_if(spec, row("u1", "v1", title="c", finished=True), "title", "b")
    assert state.store.put_if(spec, row("u1", "v1", title="d", finished=False), "finished", True)
    assert state.store.get(spec, ("u1", "v1", 0)) == Row(full("u1", "v1", title="d", finished=False))


def test_put_if_never_creates_a_row(state: StateHarness, spec: ViewSpec) -> None:
    assert not state.store.put_if(spec, row("u1", "v1", title="x"), "title", "x")
    assert state.store.get(spec, ("u1", "v1", 0)) is None


@pytest.mark.parametrize("column, expected", [("video_id", "v1"), ("title", None), ("title", 5),
                                              ("nope", "x")])
def test_put_if_refuses_a_condition_no_store_can_check(
    state: StateHarness, spec: ViewSpec, column: str, expected: Any
) -> None:
    state.store.put(spec, row("u1", "v1", title="a"))
    with pytest.raises(StateStoreError):
        state.store.put_if(spec, row("u1", "v1", title="x"), column, expected)
    assert state.store.get(spec, ("u1", "v1", 0)) == Row(full("u1", "v1", title="a"))


def test_put_if_lets_exactly_one_of_racing_updates_win(state: StateHarness, spec: ViewSpec) -> None:
    # Compare-and-set from many clients on one expected value: one wins, the rest see a change.
    state.store.put(spec, row("u1", "v1", extra=["start"]))
    racers = 8
    stores = [state.reopen() for _ in range(racers)]
    won = released_together(racers, lambda i: stores[i].put_if(spec, row("u1", "v1", extra=["start", i]), "extra",
                                                                ["start"]))
    assert won.count(True) == 1
    got = state.store.get(spec, ("u1", "v1", 0))
    assert got is not None and got.values["extra"] == ["start", won.index(True)]


def test_drop_deletes_the_whole_store(state: StateHarness, spec: ViewSpec, tmp_path: Path) -> None:
    # A store of the harness's kind of its own (the harness's is shared by the session).
    from reelstream.stores.cassandra import CassandraStateStore
    from reelstream.stores.sqlite_state import SqliteStateStore

    def own() -> StateStore:
        if isinstance(state.store, SqliteStateStore):
            return SqliteStateStore(tmp_path / "own.db")
        store = state.store
        assert isinstance(store, CassandraStateStore)
        return CassandraStateStore(store._cluster.contact_points, store._cluster.port, f"{store._keyspace}_own")

    made = own()
    made.ensure_views([spec])
    made.put(spec, row("u1", "v1"))
    made.drop()
    assert not (tmp_path / "own.db").exists()
    again = own()
    try:
        with pytest.raises(StateStoreError):  # its views went with it
            again.get(spec, ("u1", "v1", 0))
    finally:
        again.drop()
