"""A flood of sign-ins (no account needed: wrong passwords cost the same scrypt) neither
queues without bound nor holds up the other gateways: it hashed on asyncio's default
threads, which manifests, license misses and resume reads share."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from reelstream.identity.accounts import AuthenticationFailed, IdentityStore
from tests.unit.gateways.support import embedded_gateways

MAX_PENDING = 4
FLOOD = 40  # more than asyncio's default executor has threads on any machine (at most 32)


async def test_sign_ins_past_the_limit_are_refused_and_signed_in_reads_still_answer(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with embedded_gateways(tmp_path, max_pending_sign_ins=MAX_PENDING) as deployed:
        client = deployed["client"]
        r = await client.post("/auth/accounts", json={"email": "v@example.com", "password": "correct horse",
                                                      "country": "US"})
        assert r.status == 201
        r = await client.post("/auth/sessions", json={"email": "v@example.com", "password": "correct horse"})
        viewer = {"Authorization": f"Bearer {(await r.json())['token']}"}

        release = threading.Event()

        def slow_wrong_password(self: IdentityStore, email: str, password: str) -> Any:
            release.wait(30)  # a scrypt that takes as long as the test needs
            raise AuthenticationFailed("email or password is wrong")

        monkeypatch.setattr(IdentityStore, "authenticate", slow_wrong_password)

        async def sign_in() -> tuple[int, dict[str, Any], str | None]:
            r = await client.post("/auth/sessions", json={"email": "x@example.com", "password": "guess1234"})
            return r.status, await r.json(), r.headers.get("Retry-After")

        flood = [asyncio.create_task(sign_in()) for _ in range(FLOOD)]
        try:
            refused = []
            async with asyncio.timeout(10):
                while len(refused) < FLOOD - MAX_PENDING:
                    await asyncio.sleep(0.01)
                    refused = [t.result() for t in flood if t.done()]
            assert all(status == 503 and retry == "1" and "retry in 1 s" in body["error"]
                       for status, body, retry in refused), refused[:3]
            async with asyncio.timeout(5):  # on the shared threads it waited for the flood
                r = await client.get("/playback/continue-watching", headers=viewer)
            assert r.status == 200
        finally:
            release.set()
        admitted = [status for status, _, _ in await asyncio.gather(*flood) if status != 503]
        assert admitted == [401] * MAX_PENDING
        r = await client.post("/auth/sessions", json={"email": "x@example.com", "password": "guess1234"})
        assert r.status == 401  # the limit counts sign-ins in progress, not sign-ins ever made
