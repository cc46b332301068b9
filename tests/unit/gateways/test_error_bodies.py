"""What the gateways' error middleware tells a client of a server-side failure: to retry
when a retry can help, and that it cannot when only the operator can fix it."""

from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from reelstream.errors import StateStoreError
from reelstream.gateways.middlewares import errors
from reelstream.keys.kek import KeyUnwrapFailed


@pytest.mark.parametrize(("failure", "says"), [
    (StateStoreError("Cassandra timed out"), "(StateStoreError); retry shortly"),
    (KeyUnwrapFailed("wrapped key for t1/SD does not authenticate"),
     "(KeyUnwrapFailed); retrying will not help: the operator must fix the server's configuration"),
])
async def test_a_server_failure_says_whether_a_retry_can_help(failure: Exception, says: str) -> None:
    async def fails(request: web.Request) -> web.Response:
        raise failure

    app = web.Application(middlewares=[errors])
    app.router.add_get("/x", fails)
    async with TestClient(TestServer(app)) as client:
        r = await client.get("/x")
        body = await r.json()
    assert r.status >= 500 and says in body["error"] and "does not authenticate" not in body["error"]


@pytest.mark.parametrize("failure", [StateStoreError("Cassandra timed out"), RuntimeError("a bug")])
async def test_a_failed_request_is_logged_without_the_ticket_in_its_path(
        failure: Exception, caplog: pytest.LogCaptureFixture) -> None:
    ticket = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhY2MtMSJ9.c2lnbmF0dXJl"

    async def fails(request: web.Request) -> web.Response:
        raise failure

    app = web.Application(middlewares=[errors])
    app.router.add_get("/manifests/t/{ticket}/{name}", fails)
    async with TestClient(TestServer(app)) as client:
        r = await client.get(f"/manifests/t/{ticket}/manifest.mpd")
    assert r.status in (500, 503)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "GET /manifests/t/<ticket>/manifest.mpd" in logged and ticket not in logged
