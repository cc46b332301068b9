"""Sign-in does not tell which emails have accounts by its timing: an unknown email is
checked against a dummy hash with the same scrypt a known one costs."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from reelstream.config import Settings
from reelstream.identity.accounts import AuthenticationFailed, IdentityStore
from reelstream.runtime import Runtime


@pytest.fixture
def identity(tmp_path: Path) -> Iterator[IdentityStore]:
    runtime = Runtime(Settings(data_dir=tmp_path / "reel"))
    store = IdentityStore(runtime.state, lambda: 0)
    store.create_account("known@example.com", "password123", "US")
    yield store
    runtime.close()


def _failed_sign_in(identity: IdentityStore, email: str) -> None:
    with pytest.raises(AuthenticationFailed, match="email or password is wrong"):
        identity.authenticate(email, "wrong-password")


def test_an_unknown_email_runs_the_same_scrypt_as_a_wrong_password(identity: IdentityStore,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []
    real: Callable[..., bytes] = hashlib.scrypt

    def counting(password: bytes, **params: Any) -> bytes:
        calls.append({k: v for k, v in params.items() if k != "salt"})
        return real(password, **params)

    monkeypatch.setattr(hashlib, "scrypt", counting)
    _failed_sign_in(identity, "known@example.com")
    known, calls[:] = list(calls), []
    _failed_sign_in(identity, "nobody@example.com")
    assert calls == known and len(known) == 1  # one scrypt each, with the same cost parameters


def test_an_unknown_email_takes_about_as_long_as_a_wrong_password(identity: IdentityStore) -> None:
    def best_of_3(email: str) -> float:
        times = []
        for _ in range(3):
            start = time.perf_counter()
            _failed_sign_in(identity, email)
            times.append(time.perf_counter() - start)
        return min(times)

    known, unknown = best_of_3("known@example.com"), best_of_3("nobody@example.com")
    # Both are one scrypt (tens of ms); before the fix the unknown email took ~0.01 ms. A
    # generous bound, so a loaded machine cannot make it flaky.
    assert unknown > 0.25 * known, (known, unknown)
