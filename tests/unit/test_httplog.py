"""A request aiohttp cannot parse is one WARNING line without a traceback, at most one per
interval, counting those left out; the logger's other records pass unchanged."""

from __future__ import annotations

import asyncio
import logging

import pytest
from aiohttp import web

from reelstream.httplog import SERVER_LOGGER, MalformedRequests, quiet_malformed_requests
from tests.support.ports import free_port


async def raw_request(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    answer = await reader.read(200)
    writer.close()
    return answer


def test_malformed_requests_are_one_warning_line_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    quiet = MalformedRequests(interval_s=10, clock=lambda: now[0])
    logger = logging.getLogger(SERVER_LOGGER)
    # `reel` commands run in this process (other tests) install one on the real clock: set it aside.
    earlier = [f for f in logger.filters if isinstance(f, MalformedRequests)]
    for f in earlier:
        logger.removeFilter(f)
    logger.addFilter(quiet)

    async def scenario() -> list[bytes]:
        async def ok(request: web.Request) -> web.Response:
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_get("/ok", ok)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            long_line = b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
            answers = [await raw_request(port, long_line), await raw_request(port, long_line)]
            now[0] += 11
            answers.append(await raw_request(port, b"GET /ok HTTP/1.1\r\nBad Header\r\n\r\n"))
            return answers
        finally:
            await runner.cleanup()

    try:
        with caplog.at_level(logging.DEBUG, logger=SERVER_LOGGER):
            answers = asyncio.run(scenario())
    finally:
        logger.removeFilter(quiet)
        for f in earlier:
            logger.addFilter(f)
    assert all(a.startswith(b"HTTP/1.") and b" 400 " in a.split(b"\r\n")[0] for a in answers)
    lines = [r for r in caplog.records if r.name == SERVER_LOGGER]
    assert [r.levelname for r in lines] == ["WARNING", "WARNING"]
    assert all(r.exc_info is None and "Traceback" not in caplog.text for r in lines)
    assert lines[0].getMessage().startswith("malformed request answered with 400: Got more than 8190 bytes")
    assert lines[1].getMessage().endswith("(and 1 more since the last such line)")


def test_other_records_of_the_server_logger_pass_unchanged() -> None:
    record = logging.LogRecord(SERVER_LOGGER, logging.ERROR, __file__, 1, "Error handling request", (),
                               (ValueError, ValueError("ours"), None))
    assert MalformedRequests().filter(record) and record.levelno == logging.ERROR and record.exc_info


def test_installing_twice_keeps_one_filter() -> None:
    logger = logging.getLogger(SERVER_LOGGER)
    first = quiet_malformed_requests()
    try:
        assert quiet_malformed_requests() is first
        assert sum(isinstance(f, MalformedRequests) for f in logger.filters) == 1
    finally:
        logger.removeFilter(first)
