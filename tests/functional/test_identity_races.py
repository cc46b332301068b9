"""Concurrent sign-ups and profile additions on the real SQLite state store, through the
IdentityStore and through the auth gateway.

The races are made to happen rather than hoped for: ``RacingState`` holds each racing
thread's first write until every racer has reached its own, so all of them have read the
store before any of them writes (the window a read-then-write loses in).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

import pytest
from aiohttp.test_utils import TestClient, TestServer

from reelstream.config import Settings
from reelstream.errors import StateStoreError
from reelstream.gateways.app import create_app
from reelstream.gateways.passwords import PasswordWork
from reelstream.identity.accounts import (
    ACCOUNT_EMAILS,
    ACCOUNTS,
    CLAIM_EXPIRY_MS,
    MAX_PROFILES,
    Account,
    AccountExists,
    AuthenticationFailed,
    IdentityStore,
    InvalidIdentityInput,
    Profile,
    hash_password,
)
from reelstream.runtime import Runtime
from reelstream.stores.ports import Column, Row, StateStore, ViewSpec
from tests.unit.gateways.support import Clock, key_service, settings

EMAIL = "racer@example.com"


class RacingState:
    """The real store, except that each thread's first write waits at a barrier of
    ``parties`` (bounded, so a broken race fails the test instead of hanging it)."""

    def __init__(self, inner: StateStore, parties: int) -> None:
        self.inner = inner
        self._barrier = threading.Barrier(parties, timeout=20)
        self._local = threading.local()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _line_up(self) -> None:
        if not getattr(self._local, "wrote", False):
            self._local.wrote = True
            self._barrier.wait()

    def put(self, spec: ViewSpec, row: Row) -> None:
        self._line_up()
        self.inner.put(spec, row)

    def put_if_absent(self, spec: ViewSpec, row: Row) -> bool:
        self._line_up()
        return self.inner.put_if_absent(spec, row)

    def put_if(self, spec: ViewSpec, row: Row, column: str, expected: Any) -> bool:
        self._line_up()
        return self.inner.put_if(spec, row, column, expected)


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    runtime = Runtime(Settings(data_dir=tmp_path / "reel"))
    yield runtime
    runtime.close()


def race(n: int, call: Callable[[int], Any]) -> list[Any]:
    """``call(i)`` in n threads at once; each one's result or the exception it raised."""
    def attempt(i: int) -> Any:
        try:
            return call(i)
        except Exception as e:  # noqa: BLE001 - the outcome under test
            return e

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(attempt, range(n)))


def racing(runtime: Runtime, parties: int) -> IdentityStore:
    return IdentityStore(cast(StateStore, RacingState(runtime.state, parties)), lambda: 1_000)


def test_concurrent_sign_ups_with_one_email_make_one_account(runtime: Runtime) -> None:
    n = 8
    identity = racing(runtime, n)

    outcomes = race(n, lambda i: identity.create_account(EMAIL, f"password{i}xx", "US"))

    winners = [(i, o) for i, o in enumerate(outcomes) if isinstance(o, Account)]
    assert len(winners) == 1, outcomes
    assert all(isinstance(o, AccountExists) for o in outcomes if not isinstance(o, Account)), outcomes
    i, account = winners[0]
    plain = IdentityStore(runtime.state, lambda: 1_000)
    assert plain.authenticate(EMAIL, f"password{i}xx") == account
    for other in set(range(n)) - {i}:
        with pytest.raises(AuthenticationFailed):
            plain.authenticate(EMAIL, f"password{other}xx")
    # Losers wrote no account: the only account row is the winner's.
    assert [r.values["account_id"] for r in runtime.state.scan(ACCOUNTS)] == [account.account_id]


def test_concurrent_profile_additions_all_land(runtime: Runtime) -> None:
    n = MAX_PROFILES - 1  # with "main", exactly the limit
    account = IdentityStore(runtime.state, lambda: 1_000).create_account(EMAIL, "password123", "US")
    identity = racing(runtime, n)

    outcomes = race(n, lambda i: identity.add_profile(account.account_id, f"p{i}"))

    assert all(isinstance(o, Profile) for o in outcomes), outcomes
    stored = identity.account(account.account_id)
    assert stored is not None
    assert sorted(p.name for p in stored.profiles) == sorted(["main", *(f"p{i}" for i in range(n))])
    assert set(outcomes) <= set(stored.profiles)


def test_the_profile_limit_holds_under_a_race(runtime: Runtime) -> None:
    n = MAX_PROFILES + 1
    account = IdentityStore(runtime.state, lambda: 1_000).create_account(EMAIL, "password123", "US")
    identity = racing(runtime, n)

    outcomes = race(n, lambda i: identity.add_profile(account.account_id, f"p{i}"))

    added = [o for o in outcomes if isinstance(o, Profile)]
    assert len(added) == MAX_PROFILES - 1, outcomes
    assert all(isinstance(o, InvalidIdentityInput) for o in outcomes if not isinstance(o, Profile)), outcomes
    stored = identity.account(account.account_id)
    assert stored is not None and len(stored.profiles) == MAX_PROFILES and set(added) <= set(stored.profiles)


def test_accounts_written_before_email_claims_still_work(runtime: Runtime) -> None:
    # The rows the earlier code wrote: the email row had no claimed_ms column at all.
    old_emails = ViewSpec(ACCOUNT_EMAILS.name, ("email",), (), {"email": Column.TEXT, "account_id": Column.TEXT},
                          ACCOUNT_EMAILS.query)
    runtime.state.ensure_views([ACCOUNTS, old_emails])
    profiles = [{"profile_id": "p-main", "name": "main"}]
    runtime.state.put(ACCOUNTS, Row({"account_id": "acc-old", "email": EMAIL, "password": hash_password("password123"),
                                     "country": "US", "profiles": profiles, "created_ms": 5}))
    runtime.state.put(old_emails, Row({"email": EMAIL, "account_id": "acc-old"}))
    identity = IdentityStore(runtime.state, lambda: 10 * CLAIM_EXPIRY_MS)

    assert identity.authenticate(EMAIL, "password123").account_id == "acc-old"
    with pytest.raises(AccountExists):
        identity.create_account(EMAIL, "password456", "US")
    added = identity.add_profile("acc-old", "kids")
    stored = identity.account("acc-old")
    assert stored is not None and stored.profiles == (Profile("p-main", "main"), added)


class FailingAccountWrites:
    """The real store, but writes of the account row fail (the store went away between a
    sign-up's claim and its account)."""

    def __init__(self, inner: StateStore) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def put(self, spec: ViewSpec, row: Row) -> None:
        if spec is ACCOUNTS:
            raise StateStoreError("injected: the store is down")
        self.inner.put(spec, row)


def test_an_email_whose_sign_up_died_after_its_claim_is_free_once_the_claim_expires(runtime: Runtime) -> None:
    now = [1_000]
    broken = IdentityStore(cast(StateStore, FailingAccountWrites(runtime.state)), lambda: now[0])
    with pytest.raises(StateStoreError):
        broken.create_account(EMAIL, "password123", "US")
    identity = IdentityStore(runtime.state, lambda: now[0])

    now[0] += CLAIM_EXPIRY_MS - 1  # the claimant might still be writing
    with pytest.raises(AccountExists):
        identity.create_account(EMAIL, "password456", "US")
    now[0] += 1
    account = identity.create_account(EMAIL, "password456", "US")

    assert identity.authenticate(EMAIL, "password456") == account
    with pytest.raises(AccountExists):  # and the live account's claim is never taken over
        identity.create_account(EMAIL, "password789", "US")
    now[0] += 10 * CLAIM_EXPIRY_MS
    with pytest.raises(AccountExists):
        identity.create_account(EMAIL, "password789", "US")


def test_a_retry_of_a_sign_up_whose_account_write_failed_finishes_it_at_once(runtime: Runtime) -> None:
    now = [1_000]
    broken = IdentityStore(cast(StateStore, FailingAccountWrites(runtime.state)), lambda: now[0])
    with pytest.raises(StateStoreError):  # the claim landed, the account did not (or its outcome is unknown)
        broken.create_account(EMAIL, "password123", "US", profile_name="Ann")
    identity = IdentityStore(runtime.state, lambda: now[0])
    with pytest.raises(AccountExists):  # someone else: the claim stays theirs
        identity.create_account(EMAIL, "password456", "US")

    account = identity.create_account(EMAIL, "password123", "US", profile_name="Ann")  # the user's retry

    claimed = runtime.state.get(ACCOUNT_EMAILS, (EMAIL,))
    assert claimed is not None and account.account_id == claimed.values["account_id"]
    assert identity.authenticate(EMAIL, "password123") == account
    with pytest.raises(AccountExists):  # once written, a sign-up is a sign-up again, whatever the password
        identity.create_account(EMAIL, "password123", "US")
    assert [r.values["account_id"] for r in runtime.state.scan(ACCOUNTS)] == [account.account_id]


# --------------------------------------------------------------------------- over HTTP


async def test_racing_requests_get_one_201_then_409s_and_keep_every_profile(runtime: Runtime) -> None:
    from reelstream.gateways.keys import SERVICES

    n = 4  # within the default executor's threads on a 2-core machine (cpu + 4)
    app = create_app(runtime, settings(), key_service(runtime), clock=Clock(1_700_000_000.0))
    async with TestClient(TestServer(app)) as client:
        services = app[SERVICES]
        services.identity = racing(runtime, n)
        services.passwords = PasswordWork(max_pending=16, threads=n)  # all n in the store at once, as on n instances

        signs = await asyncio.gather(*(client.post("/auth/accounts", json={
            "email": EMAIL, "password": f"password{i}xx", "country": "US"}) for i in range(n)))
        statuses = sorted(r.status for r in signs)
        assert statuses == [201] + [409] * (n - 1), [await r.text() for r in signs]
        winner = next(i for i, r in enumerate(signs) if r.status == 201)
        refused = await next(r for r in signs if r.status == 409).json()
        assert refused["error"] == f"an account with {EMAIL} exists; sign in instead"

        services.identity = racing(runtime, n)
        r = await client.post("/auth/sessions", json={"email": EMAIL, "password": f"password{winner}xx"})
        assert r.status == 201, await r.text()
        auth = {"Authorization": f"Bearer {(await r.json())['token']}"}
        added = await asyncio.gather(*(client.post("/auth/profiles", json={"name": f"p{i}"}, headers=auth)
                                       for i in range(n)))
        assert [r.status for r in added] == [201] * n
        me = await (await client.get("/auth/me", headers=auth)).json()
        assert sorted(p["name"] for p in me["profiles"]) == sorted(["main", *(f"p{i}" for i in range(n))])

