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
