"""The gateway's folded view caches: events fold into cached accounts and into the overlay
applied to fresh loads; an account whose events the follower passed by undecoded is
reloaded soon; expired licenses are dropped."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from reelstream.config import Settings
from reelstream.errors import EventLogError
from reelstream.events.model import new_event
from reelstream.gateways.account_state import LicenseCache
from reelstream.gateways.views import PASSED_RELOAD_S, follow
from reelstream.processors.licenses.logic import LICENSES
from reelstream.runtime import Runtime
from reelstream.stores.ports import Row
from tests.unit.gateways.support import Clock

NOW_MS = 1_800_000_000_000


def granted(user: str, license_id: str, device: str, expires_ms: int) -> object:
    return new_event("LicenseGranted", {
        "license_id": license_id, "user_id": user, "device_id": device, "title_id": "t", "key_ids": ["k"],
        "session_type": "temporary", "expires_at": datetime.fromtimestamp(expires_ms / 1000, tz=UTC)},
        producer="test", event_time=datetime.fromtimestamp(NOW_MS / 1000, tz=UTC))


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    rt = Runtime(Settings(data_dir=tmp_path / "reel"))
    rt.state.ensure_views([LICENSES])
    yield rt
    rt.close()


def test_events_fold_into_cached_accounts_and_into_later_loads(runtime: Runtime) -> None:
    clock = Clock(0.0)
    cache = LicenseCache(runtime.state, lambda: NOW_MS, clock=clock)
    assert cache.peek("u1") is None and cache.get("u1") == [] and cache.peek("u1") == []
    cache.apply(granted("u1", "l1", "d1", NOW_MS + 1000))  # a cached account: folded at once
    assert [lic.device_id for lic in cache.peek("u1") or []] == ["d1"]
    cache.apply(granted("u2", "l2", "d2", NOW_MS + 1000))  # not cached: kept in the overlay...
    assert cache.peek("u2") is None
    assert [lic.license_id for lic in cache.get("u2")] == ["l2"]  # ...and applied to the view's (empty) rows
    cache.apply(granted("u1", "old", "d3", NOW_MS - 1))  # already expired: dropped
    assert [lic.license_id for lic in cache.peek("u1") or []] == ["l1"]
    clock.advance(301)
    assert cache.peek("u1") is None  # past the ttl: read again


def test_an_account_whose_events_passed_by_is_reloaded_within_seconds(runtime: Runtime) -> None:
    clock = Clock(0.0)
    cache = LicenseCache(runtime.state, lambda: NOW_MS, clock=clock)
    assert cache.view.wants("u3") is False  # the follower skips u3's event undecoded
    cache.get("u3")  # loaded from a view that may not have that event yet
    clock.advance(PASSED_RELOAD_S - 0.1)
    assert cache.peek("u3") == []
    runtime.state.put(LICENSES, Row({"user_id": "u3", "license_id": "l3", "title_id": "t", "device_id": "d",
                                     "kind": "streaming", "key_ids": ["k"], "issued_ms": NOW_MS,
                                     "expires_ms": NOW_MS + 1000, "returned": False}, {}))
    clock.advance(0.2)
    assert cache.peek("u3") is None  # reloaded soon, not after the full ttl
    assert [lic.license_id for lic in cache.get("u3")] == ["l3"]
    assert cache.view.wants("u3") is True  # cached now: its events are decoded and folded


def test_the_overlay_keeps_a_busy_accounts_newest_events_only(runtime: Runtime) -> None:
    from reelstream.gateways.views import OVERLAY_MAX

    cache = LicenseCache(runtime.state, lambda: NOW_MS, clock=Clock(0.0))
    for n in range(OVERLAY_MAX + 10):  # not cached: every event goes to the overlay
        cache.apply(granted("busy", f"l{n}", f"d{n}", NOW_MS + 1000))
    ids = {lic.license_id for lic in cache.get("busy")}
    assert len(ids) == OVERLAY_MAX and f"l{OVERLAY_MAX + 9}" in ids and "l0" not in ids


class _FailingOnce:
    """Fault injection: the first consumer's first poll fails as a broker read can; the real
    embedded log does everything else."""

    def __init__(self, log: object) -> None:
        self._log = log
        self.failures = 0

    def consumer(self, topics: list[str], group_id: str | None) -> object:
        inner = self._log.consumer(topics, group_id)  # type: ignore[attr-defined]
        outer = self

        class Consumer:
            def __getattr__(self, name: str) -> object:
                return getattr(inner, name)

            def poll(self, max_records: int = 500, timeout: float = 1.0) -> object:
                if outer.failures == 0:
                    outer.failures += 1
                    raise EventLogError("poll failed: broker connection lost")
                return inner.poll(max_records, timeout)

        return Consumer()


def test_the_follower_outlives_a_failed_read_and_folds_later_events(runtime: Runtime) -> None:
    import asyncio

    cache = LicenseCache(runtime.state, lambda: NOW_MS)
    assert cache.get("u4") == []  # cached: only the follower can bring the grant in now
    failing = _FailingOnce(runtime.log)

    async def scenario() -> list[str]:
        stop = asyncio.Event()
        task = asyncio.create_task(follow([cache.view], "reel.licenses", failing, runtime.codec,  # type: ignore[arg-type]
                                          stop, 0))
        runtime.publish(granted("u4", "l4", "d4", NOW_MS + 1000))
        for _ in range(100):
            if cache.peek("u4"):
                break
            await asyncio.sleep(0.1)
        stop.set()
        await task
        return [lic.license_id for lic in cache.peek("u4") or []]

    assert asyncio.run(scenario()) == ["l4"]
    assert failing.failures == 1


def test_an_account_with_no_entitlements_is_read_again_within_seconds(runtime: Runtime) -> None:
    from reelstream.gateways.entitlements import EntitlementCache
    from reelstream.gateways.views import EMPTY_RELOAD_S
    from reelstream.processors.entitlements.logic import ENTITLEMENTS

    runtime.state.ensure_views([ENTITLEMENTS])
    clock = Clock(0.0)
    cache = EntitlementCache(runtime.state, clock=clock)
    assert cache.get("u5") == []  # not subscribed yet (or its grant has not reached this gateway)
    runtime.state.put(ENTITLEMENTS, Row({"user_id": "u5", "entitlement_id": "sub", "kind": "SUBSCRIPTION",
                                         "title_id": None, "plan": "standard", "starts_ms": 0, "ends_ms": None,
                                         "revoked": False, "revoked_reason": None}, {}))
    clock.advance(EMPTY_RELOAD_S - 0.1)
    assert cache.peek("u5") == []
    clock.advance(0.2)
    assert cache.peek("u5") is None  # read again soon, not after the full ttl
    assert [e.entitlement_id for e in cache.get("u5")] == ["sub"]
    clock.advance(60)
    assert [e.entitlement_id for e in cache.peek("u5") or []] == ["sub"]  # an entitled account stays cached


def test_a_renewal_replaces_the_grant_it_renews_in_the_overlay(runtime: Runtime) -> None:
    """Every grant of a session's license id folds to the same row but the newest expiry, so
    the overlay keeps only the newest (it is walked by each full garbage collection: with
    every renewal kept, the license server's collector stalled it for up to 0.8 s)."""
    cache = LicenseCache(runtime.state, lambda: NOW_MS, clock=Clock(0.0))
    for n in range(10):
        cache.apply(granted("renewing", "lic-s1", "d1", NOW_MS + 1000 + n))
    cache.apply(granted("renewing", "lic-s2", "d2", NOW_MS + 1000))
    assert len(cache.view._overlay["renewing"]) == 2
    licenses = {lic.license_id: lic for lic in cache.get("renewing")}
    assert sorted(licenses) == ["lic-s1", "lic-s2"]
    assert licenses["lic-s1"].expires_ms == NOW_MS + 1009  # the newest grant's
