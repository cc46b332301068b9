"""The edge's own servers say which port is taken and how to choose another."""

import socket
import time
import urllib.request

import pytest
from aiohttp import web

from reelstream.edge.runner import EdgePortUnavailable
from reelstream.edge.stack import _Server
from tests.support.ports import free_port


def hello() -> web.Application:
    app = web.Application()

    async def ok(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    app.router.add_get("/", ok)
    return app


def test_a_taken_port_fails_at_once_naming_the_port_and_the_option() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(EdgePortUnavailable, match=rf"127\.0\.0\.1:{port} .*--edge-port") as err:
            _Server(hello(), "127.0.0.1", port)
        assert time.monotonic() - started < 5  # not the 10-s wait for a server that never came
        assert err.value.port == port


def test_a_free_port_serves() -> None:
    port = free_port()
    server = _Server(hello(), "127.0.0.1", port)
    try:
        assert server.url == f"http://127.0.0.1:{port}"
        with urllib.request.urlopen(server.url + "/", timeout=5) as response:
            assert response.read() == b"ok"
    finally:
        server.stop()
