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

NOW_MS = 1_000  # the wall clock of these tests: every session row below is live at it


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
    cache = LiveSessionCache(store, now_ms=lambda: NOW_MS, clock=Clock(0.0))  # type: ignore[arg-type]

    async def scenario() -> list[list[dict[str, Any]]]:
        return await asyncio.gather(cache.get("a"), cache.get("b"), cache.get("c"), cache.get("a"))

    a, b, c, a_again = asyncio.run(scenario())

    assert (sessions_of(a), sessions_of(b), c, a_again) == (["s1", "s2"], ["s3"], [], a)
    assert store.calls == [["a", "b", "c"]]  # one read, each account once
    assert (cache.loads, cache.batches) == (3, 1)


def test_requests_arriving_during_a_read_form_the_next_batch(runtime: Runtime) -> None:
    store = Counting(runtime.state)
    cache = LiveSessionCache(store, now_ms=lambda: NOW_MS, clock=Clock(0.0), max_batch=2)  # type: ignore[arg-type]

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
    cache = LiveSessionCache(store, now_ms=lambda: NOW_MS, clock=clock, fresh_s=5.0, max_age_s=60.0)  # type: ignore[arg-type]

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
    cache = LiveSessionCache(store, now_ms=lambda: NOW_MS, clock=clock, fresh_s=5.0)  # type: ignore[arg-type]

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
    cache = LiveSessionCache(store, now_ms=lambda: NOW_MS, clock=Clock(0.0))  # type: ignore[arg-type]
    asyncio.run(cache.get("a"))
    runtime.state.put(LIVE_SESSIONS, session("a", "s2"))

    cache.invalidate("a")

    assert cache.peek("a") is None
    assert sessions_of(asyncio.run(cache.get("a"))) == ["s1", "s2"]
    assert len(store.calls) == 2


def test_background_refreshes_ride_along_with_a_read_someone_waits_for(runtime: Runtime) -> None:
    clock = Clock(0.0)
    store = Counting(runtime.state)
    cache = LiveSessionCache(store, now_ms=lambda: NOW_MS, clock=clock, fresh_s=5.0, linger_s=60.0)  # type: ignore[arg-type]

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
    cache = LiveSessionCache(store, now_ms=lambda: NOW_MS, clock=clock, fresh_s=5.0, linger_s=0.0)  # type: ignore[arg-type]

    async def scenario() -> None:
        await cache.get("a")
        runtime.state.put(LIVE_SESSIONS, session("a", "s9"))
        clock.advance(6.0)
        cache.refresh_if_stale("a")
        await cache.drained()

    asyncio.run(scenario())

    assert store.calls == [["a"], ["a"]]
    assert sessions_of(cache.peek("a") or []) == ["s9"]


# --------------------------------------------------------------------------- the fold of reel.sessions

def opened(user: str, sid: str, device: str, at_ms: int) -> Any:
    from datetime import UTC, datetime

    from reelstream.events.model import new_event

    return new_event("PlaybackSessionOpened", {
        "session_id": sid, "user_id": user, "profile_id": "p", "device_id": device, "device_type": "tv",
        "title_id": "t", "opened_at": datetime.fromtimestamp(at_ms / 1000, tz=UTC)}, producer="test")


def closed(user: str, sid: str, device: str, at_ms: int) -> Any:
    from datetime import UTC, datetime

    from reelstream.events.model import new_event

    return new_event("PlaybackSessionClosed", {
        "session_id": sid, "user_id": user, "device_id": device, "closed_at": datetime.fromtimestamp(at_ms / 1000, tz=UTC),
        "reason": "STOPPED"}, producer="test")


def live(rows: list[dict[str, Any]]) -> list[str]:
    return sorted(r["session_id"] for r in rows if not r["ended"])


def test_a_read_keeps_only_live_sessions_and_the_fold_keeps_them_current_without_reads(runtime: Runtime) -> None:
    runtime.state.put(LIVE_SESSIONS, session("a", "s1", last_event_ms=NOW_MS))
    runtime.state.put(LIVE_SESSIONS, session("a", "gone", last_event_ms=NOW_MS - 71_000))  # lapsed: its player vanished
    ended = session("a", "done", last_event_ms=NOW_MS)
    ended.values["ended"] = True
    runtime.state.put(LIVE_SESSIONS, ended)
    store = Counting(runtime.state)
    cache = LiveSessionCache(store, now_ms=lambda: NOW_MS, clock=Clock(0.0))  # type: ignore[arg-type]

    assert live(asyncio.run(cache.get("a"))) == ["s1"]
    assert cache.wants("a") and not cache.wants("b")  # the follower decodes only held accounts' events
    cache.apply(opened("a", "s2", "d-s2", NOW_MS + 5))
    assert live(cache.peek("a") or []) == ["s1", "s2"]
    cache.apply(closed("a", "s1", "d-s1", NOW_MS + 9))
    cache.apply(opened("a", "s1", "d-s1", NOW_MS))  # an opening folded again after the end: still ended
    assert live(cache.peek("a") or []) == ["s2"]
    assert len(store.calls) == 1


def test_events_folded_before_the_view_has_them_survive_a_read(runtime: Runtime) -> None:
    """The processor emits before it writes the view: a read answered in between must not
    bring back the old rows."""
    runtime.state.put(LIVE_SESSIONS, session("a", "s1", last_event_ms=NOW_MS))
    cache = LiveSessionCache(runtime.state, now_ms=lambda: NOW_MS, clock=Clock(0.0), fresh_s=5.0)

    async def scenario() -> list[dict[str, Any]]:
        asking = asyncio.ensure_future(cache.get("a"))
        await asyncio.sleep(0)
        cache.apply(opened("a", "s2", "d-s2", NOW_MS))  # while the read is queued or in flight
        cache.apply(closed("a", "s1", "d-s1", NOW_MS))
        await asking
        cache.invalidate("a")
        return await cache.get("a")  # a later read: the view still lacks both

    assert live(asyncio.run(scenario())) == ["s2"]


def test_the_stream_count_is_settled_unless_sessions_the_fold_cannot_see_into_decide_it() -> None:
    from reelstream.gateways.account_state import count_is_settled

    now = 1_000_000

    def rows(*ages_s: float) -> list[dict[str, Any]]:
        return [{"session_id": f"s{i}", "device_id": f"d{i}", "last_event_ms": now - int(age * 1000), "ended": False}
                for i, age in enumerate(ages_s)]

    assert count_is_settled(rows(), now, "me", 3)
    assert count_is_settled(rows(1, 500), now, "me", 3)  # even if the old one still plays: 2 < 3
    assert count_is_settled(rows(1, 2, 3, 900), now, "me", 3)  # three certainly live: refused either way
    assert not count_is_settled(rows(1, 2, 500), now, "me", 3)  # 2 certain, a 3rd maybe: needs a read
    assert count_is_settled(rows(1, 2, 500), now, "d2", 3)  # the asking device's own session does not count


def test_an_account_whose_count_is_open_is_read_again_once_its_rows_are_older_than_fresh_s(runtime: Runtime) -> None:
    runtime.state.put(LIVE_SESSIONS, session("a", "s1", last_event_ms=NOW_MS))
    clock = Clock(0.0)
    store = Counting(runtime.state)
    cache = LiveSessionCache(store, now_ms=lambda: NOW_MS + 100_000, clock=clock, fresh_s=5.0)  # type: ignore[arg-type]
    cache.apply(opened("a", "s1", "d-s1", NOW_MS))
    rows = asyncio.run(cache.get("a"))  # s1 had lapsed at the read (100 s without an event): dropped
    assert rows == []
    stale = [{"session_id": "x", "device_id": "dx", "last_event_ms": NOW_MS, "ended": False}]
    assert cache.settled("a", stale, NOW_MS + 100_000, "me", 1)  # read under fresh_s ago: used as it is
    clock.advance(6.0)
    assert not cache.settled("a", stale, NOW_MS + 100_000, "me", 1)  # the limit hangs on x: read again
    assert cache.settled("a", stale, NOW_MS + 100_000, "me", 2)


# --------------------------------------------------------------------------- streams this gateway licensed

def test_a_granted_stream_is_live_at_once_through_reads_until_the_live_timeout(runtime: Runtime) -> None:
    """A streaming license counts before reel.sessions announces its session: through a
    re-read of a view that lacks it, merged with the fold's row once that comes, and no
    longer once its grant is ``LIVE_TIMEOUT_MS`` old with no event since."""
    from reelstream.processors.sessions.logic import LIVE_TIMEOUT_MS, live_sessions

    now = [NOW_MS]
    cache = LiveSessionCache(runtime.state, now_ms=lambda: now[0], clock=Clock(0.0), fresh_s=5.0)
    asyncio.run(cache.get("a"))
    cache.granted("a", "s1", "d1")
    cache.granted("a", "s1", "d1")  # a renewal: the same one session
    assert [(r["session_id"], r["last_event_ms"]) for r in cache.peek("a") or []] == [("s1", NOW_MS)]
    cache.invalidate("a")  # a heartbeat's start: the next license reads the view, which lacks s1
    assert live(asyncio.run(cache.get("a"))) == ["s1"]
    cache.apply(opened("a", "s1", "d1", NOW_MS + 500))  # the fold catches up: still one row
    assert [(r["session_id"], r["last_event_ms"]) for r in cache.peek("a") or []] == [("s1", NOW_MS + 500)]
    now[0] = NOW_MS + 500 + LIVE_TIMEOUT_MS + 1  # neither a beat nor a renewal since: lapsed
    assert live_sessions(cache.peek("a") or [], now[0]) == []
    cache.invalidate("a")
    assert asyncio.run(cache.get("a")) == []


def test_a_granted_stream_does_not_reopen_an_ended_session(runtime: Runtime) -> None:
    cache = LiveSessionCache(runtime.state, now_ms=lambda: NOW_MS, clock=Clock(0.0))
    asyncio.run(cache.get("a"))
    cache.apply(closed("a", "s1", "d1", NOW_MS))
    cache.granted("a", "s1", "d1")
    assert live(cache.peek("a") or []) == []


def test_account_locks_serialise_one_account_and_are_dropped_when_unused() -> None:
    from reelstream.gateways.account_state import AccountLocks

    locks = AccountLocks()
    order: list[str] = []

    async def hold(user: str, name: str) -> None:
        async with locks.hold(user):
            order.append(f"{name}+")
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            order.append(f"{name}-")

    async def scenario() -> None:
        await asyncio.gather(hold("a", "a1"), hold("a", "a2"), hold("b", "b1"))

    asyncio.run(scenario())
    assert order.index("a1-") < order.index("a2+")  # one account: one after the other
    assert order.index("b1+") < order.index("a1-")  # another account does not wait
    assert len(locks) == 0
