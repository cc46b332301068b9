"""Failed sign-ins per email: the eleventh within 15 minutes is refused with when to retry,
a success clears the count, other emails are not affected; over HTTP, a throttled guess is
a 429 even with the right password, and costs no password hash."""

from __future__ import annotations

from pathlib import Path

import pytest

from reelstream.gateways.errors import TooManyAttempts
from reelstream.gateways.throttle import SignInThrottle
from tests.unit.gateways.support import embedded_gateways


def test_the_limit_within_the_window_then_the_oldest_failure_ages_out() -> None:
    now = [1000.0]
    throttle = SignInThrottle(limit=3, window_s=60, clock=lambda: now[0])
    for _ in range(3):
        throttle.check("Victim@Example.com ")
        throttle.failed("victim@example.com")
        now[0] += 10
    with pytest.raises(TooManyAttempts) as refused:
        throttle.check("victim@example.com")
    assert refused.value.retry_after_s == 30  # the first failure (t=1000) ages out at 1060; now 1030
    throttle.check("other@example.com")  # another email is not held
    now[0] += 30
    throttle.check("victim@example.com")  # one failure has aged out
    throttle.failed("victim@example.com")
    with pytest.raises(TooManyAttempts):
        throttle.check("victim@example.com")
    throttle.succeeded("VICTIM@example.com")
    throttle.check("victim@example.com")


def test_memory_is_bounded() -> None:
    throttle = SignInThrottle(capacity=100)
    for n in range(1000):
        throttle.failed(f"guess{n}@example.com")
    assert len(throttle._failures) == 100


async def test_over_http_the_eleventh_wrong_guess_is_a_429_even_with_the_right_password(tmp_path: Path) -> None:
    async with embedded_gateways(tmp_path) as g:
        client = g["client"]
        account = {"email": "target@example.com", "password": "the-right-one", "country": "US"}
        assert (await client.post("/auth/accounts", json=account)).status == 201
        for n in range(10):
            wrong = await client.post("/auth/sessions", json={"email": "target@example.com", "password": f"guess{n}xx"})
            assert wrong.status == 401
        right = await client.post("/auth/sessions", json={"email": "target@example.com", "password": "the-right-one"})
        assert right.status == 429 and int(right.headers["Retry-After"]) > 0
        assert "failed sign-ins for this email" in (await right.json())["error"]
