"""The license server's live-session cache: reads of many accounts grouped into one
``query_many``, stale rows used while a background read refreshes them, a failed read
reaching every waiter and leaving the cached rows as they were."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from reelstream.config import Settings
from reelstream.errors import StateStoreError
from reelstream.gateways.account_state import LiveSessionCache
from reelstream.processors.sessions.logic import LIVE_SESSIONS
from reelstream.runtime import Runtime
from reelstream.stores.ports import Row, StateStore, ViewSpec
from tests.unit.gateways.support import Clock


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    rt = Runtime(Settings(data_dir=tmp_path / "reel"))
    rt.state.ensure_views([LIVE_SESSIONS])
    yield rt
    rt.close()


def session(user: str, session_id: str, last_event_ms: int = 1_000) -> Row:
    return Row({"user_id": user, "session_id": session_id, "profile_id": "p", "device_id": f"d-{session_id}",
                "device_type": "tv", "title_id": "t", "started_ms": 0, "last_event_ms": last_event_ms,
                "position_ms": 0, "state": "PLAYING", "ended": False, "qoe": {}})


class Counting:
    """The real store, counting ``query_many`` calls and the partitions each one read;
    ``fail`` makes the next call raise (a broken connection, which SQLite cannot produce)."""

    def __init__(self, inner: StateStore) -> None:
        self.inner = inner
        self.calls: list[list[str]] = []
        self.fail = False

    def query_many(self, spec: ViewSpec, partitions: Sequence[Sequence[Any]]) -> list[list[Row]]:
        self.calls.append([p[0] for p in partitions])
        if self.fail:
            self.fail = False
            raise StateStoreError("Cassandra: querying 'live_sessions': connection lost")
        return self.inner.query_many(spec, partitions)


def sessions_of(rows: list[dict[str, Any]]) -> list[str]:
    return sorted(r["session_id"] for r in rows)


def test_accounts_asked_for_together_are_read_in_one_batch(runtime: Runtime) -> None:
    for user, sid in [("a", "s1"), ("a", "s2"), ("b", "s3")]:
        runtime.state.put(LIVE_SESSIONS, session(user, sid))
    store = Counting(runtime.state)
    cache = LiveSessionCache(store, clock=Clock(0.0))  # type: ignore[arg-type]

    async def scenario() -> list[list[dict[str, Any]]]:
        return await asyncio.gather(cache.get("a"), cache.get("b"), cache.get("c"), cache.get("a"))

    a, b, c, a_again = asyncio.run(scenario())

    assert (sessions_of(a), sessions_of(b), c, a_again) == (["s1", "s2"], ["s3"], [], a)
    assert store.calls == [["a", "b", "c"]]  # one read, each account once
    assert (cache.loads, cache.batches) == (3, 1)


def test_requests_arriving_during_a_read_form_the_next_batch(runtime: Runtime) -> None:
    store = Counting(runtime.state)
    cache = LiveSessionCache(store, clock=Clock(0.0), max_batch=2)  # type: ignore[arg-type]

    async def scenario() -> None:
        first = asyncio.gather(cache.get("a"), cache.get("b"), cache.get("c"))
        await asyncio.sleep(0)  # the reader has taken its first batch (two accounts: max_batch)
        await asyncio.gather(first, cache.get("d"), cache.get("a"))

    asyncio.run(scenario())

    assert store.calls == [["a", "b"], ["c", "d"]]  # "a" was in flight: its read served the second ask


def test_stale_rows_are_used_while_a_background_read_refreshes_them(runtime: Runtime) -> None:
    runtime.state.put(LIVE_SESSIONS, session("a", "s1"))
    clock = Clock(0.0)
    store = Counting(runtime.state)
    cache = LiveSessionCache(store, clock=clock, fresh_s=5.0, max_age_s=60.0)  # type: ignore[arg-type]

    async def scenario() -> tuple[list[str], list[str], list[str]]:
        await cache.get("a")
        runtime.state.put(LIVE_SESSIONS, session("a", "s2"))  # a stream starts on another device
        clock.advance(4.0)
        cache.refresh_if_stale("a")  # still fresh: no read
        clock.advance(2.0)
        stale = sessions_of(cache.peek("a") or [])
        cache.refresh_if_stale("a")
        cache.refresh_if_stale("a")  # already queued: the same read
        during = sessions_of(cache.peek("a") or [])  # the request that saw it stale used these
        refreshed = sessions_of(await cache.get("a"))  # joins the queued read
        return stale, during, refreshed

    assert asyncio.run(scenario()) == (["s1"], ["s1"], ["s1", "s2"])
    assert store.calls == [["a"], ["a"]]
    clock.advance(60.0)
    assert cache.peek("a") is None  # past max_age: never used, the next license waits for a read


def test_a_failed_read_reaches_every_waiter_and_keeps_the_cached_rows(runtime: Runtime) -> None:
    runtime.state.put(LIVE_SESSIONS, session("a", "s1"))
    clock = Clock(0.0)
    store = Counting(runtime.state)
    cache = LiveSessionCache(store, clock=clock, fresh_s=5.0)  # type: ignore[arg-type]

    async def scenario() -> list[Any]:
        await cache.get("a")
        clock.advance(6.0)
        store.fail = True
        cache.refresh_if_stale("a")  # a background refresh: nobody awaits it
        return await asyncio.gather(cache.get("a"), cache.get("b"), return_exceptions=True)

    outcomes = asyncio.run(scenario())

    assert [type(o) for o in outcomes] == [StateStoreError, StateStoreError]
    assert "connection lost" in str(outcomes[0])
    assert sessions_of(cache.peek("a") or []) == ["s1"]  # the stale rows stay usable
    assert asyncio.run(cache.get("b")) == []  # the next read works


def test_invalidate_drops_the_account_so_the_next_license_reads_it(runtime: Runtime) -> None:
    runtime.state.put(LIVE_SESSIONS, session("a", "s1"))
    store = Counting(runtime.state)
    cache = LiveSessionCache(store, clock=Clock(0.0))  # type: ignore[arg-type]
    asyncio.run(cache.get("a"))
    runtime.state.put(LIVE_SESSIONS, session("a", "s2"))

    cache.invalidate("a")

    assert cache.peek("a") is None
    assert sessions_of(asyncio.run(cache.get("a"))) == ["s1", "s2"]
    assert len(store.calls) == 2


def test_background_refreshes_ride_along_with_a_read_someone_waits_for(runtime: Runtime) -> None:
    clock = Clock(0.0)
    store = Counting(runtime.state)
    cache = LiveSessionCache(store, clock=clock, fresh_s=5.0, linger_s=60.0)  # type: ignore[arg-type]

    async def scenario() -> None:
        await asyncio.gather(cache.get("a"), cache.get("b"))
        clock.advance(6.0)
        cache.refresh_if_stale("a")
        cache.refresh_if_stale("b")  # both linger (60 s here): nobody waits on them
        await asyncio.sleep(0)
        assert store.calls == [["a", "b"]]
        await cache.get("c")  # a license that must wait starts the read, the refreshes go with it

    asyncio.run(scenario())

    assert store.calls == [["a", "b"], ["a", "b", "c"]]


def test_refreshes_alone_are_read_once_their_linger_is_over(runtime: Runtime) -> None:
    clock = Clock(0.0)
    store = Counting(runtime.state)
    cache = LiveSessionCache(store, clock=clock, fresh_s=5.0, linger_s=0.0)  # type: ignore[arg-type]

    async def scenario() -> None:
        await cache.get("a")
        runtime.state.put(LIVE_SESSIONS, session("a", "s9"))
        clock.advance(6.0)
        cache.refresh_if_stale("a")
        await cache.drained()

    asyncio.run(scenario())

    assert store.calls == [["a"], ["a"]]
    assert sessions_of(cache.peek("a") or []) == ["s9"]
