"""The HTTP ingest endpoint against the real app factory: resumable pieces, then ingest or
422; bearer tokens; one ingest of a title at a time; answers as its OpenAPI document says."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
from aiohttp.test_utils import TestClient, TestServer

from reelstream.config import Settings
from reelstream.gateways.ingest import create_app
from reelstream.media.transcode.ladder import Rung
from reelstream.runtime import Runtime
from tests.support.media import make_master, title_metadata
from tests.support.ports import free_port
from tests.unit.gateways.support import wait_for

TOKEN = "studio-tool-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@asynccontextmanager
async def ingest_client(tmp_path: Path, **settings: Any) -> AsyncIterator[TestClient]:
    runtime = Runtime(Settings(data_dir=tmp_path / "reel", **settings))
    app = create_app(runtime, tmp_path / "staging", (TOKEN,), (Rung("h264", 144, 200),))
    async with TestClient(TestServer(app)) as client:
        yield client


@pytest.fixture(scope="module")
def master(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_master(tmp_path_factory.mktemp("master") / "film.mp4", seconds=3)


def conforms(document: dict[str, Any], path: str, method: str, status: int, body: Any) -> None:
    """``body`` validates against the schema ``document`` declares for that answer."""
    jsonschema_rs = pytest.importorskip("jsonschema_rs")  # installed with schemathesis
    answer = document["paths"][path][method.lower()]["responses"][str(status)]
    jsonschema_rs.validator_for(answer["content"]["application/json"]["schema"]).validate(body)


def test_resumable_http_upload_then_ingest_and_a_422_with_reasons(tmp_path: Path, master: Path) -> None:
    data = master.read_bytes()
    doc = title_metadata("web-1", master)

    async def scenario() -> None:
        async with ingest_client(tmp_path) as client:
            document = await (await client.get("/openapi.json")).json()
            url = "/titles/web-1/files/film.mp4"
            first = await client.put(url, data=data[:100_000], headers={**AUTH, "Upload-Offset": "0"})
            assert first.status == 204 and first.headers["Upload-Offset"] == "100000"
            stale = await client.put(url, data=data[50_000:], headers={**AUTH, "Upload-Offset": "50000"})
            assert stale.status == 409 and stale.headers["Upload-Offset"] == "100000"
            assert "resume from there" in (await stale.json())["error"]
            offset = int((await client.head(url, headers=AUTH)).headers["Upload-Offset"])  # resume where it is
            rest = await client.put(url, data=data[offset:], headers={**AUTH, "Upload-Offset": str(offset)})
            assert rest.headers["Upload-Offset"] == str(len(data))
            bad = await client.post("/titles/web-1/ingest", headers=AUTH, data=json.dumps({**doc, "master": {
                "file": "film.mp4", "sha256": "1" * 64}}))
            assert bad.status == 422
            rejected = await bad.json()
            assert [r["code"] for r in rejected["reasons"]] == ["CHECKSUM_MISMATCH"]
            conforms(document, "/titles/{title_id}/ingest", "POST", 422, rejected)
            assert (tmp_path / "staging" / "web-1" / "film.mp4").stat().st_size == len(data)  # kept to post again
            ok = await client.post("/titles/web-1/ingest", headers=AUTH, data=json.dumps(doc))
            assert ok.status == 201, await ok.text()
            body = await ok.json()
            assert body["renditions"] == ["h264-144p-200k"] and body["chunk_count"] == 2
            conforms(document, "/titles/{title_id}/ingest", "POST", 201, body)
            assert not (tmp_path / "staging" / "web-1").exists()  # origin storage holds it now

    asyncio.run(scenario())


def test_an_asynchronous_ingest_answers_at_once_and_its_status_shows_progress_then_the_plan(tmp_path: Path, master: Path) -> None:
    doc = title_metadata("poll-1", master)

    async def scenario() -> None:
        async with ingest_client(tmp_path) as client:
            document = await (await client.get("/openapi.json")).json()
            status_path = "/titles/poll-1/ingest"
            none_yet = await client.get(status_path, headers=AUTH)
            assert none_yet.status == 404 and "no ingest of poll-1" in (await none_yet.json())["error"]
            await client.put("/titles/poll-1/files/film.mp4", data=master.read_bytes(),
                             headers={**AUTH, "Upload-Offset": "0"})
            started = await client.post(status_path, headers={**AUTH, "Prefer": "respond-async"}, data=json.dumps(doc))
            assert started.status == 202 and started.headers["Location"] == status_path
            first = await started.json()
            assert first["state"] == "running"
            conforms(document, "/titles/{title_id}/ingest", "POST", 202, first)
            seen = []
            while (status := await (await client.get(status_path, headers=AUTH)).json())["state"] == "running":
                seen.append(status["step"])
                await asyncio.sleep(0.01)
            assert status["state"] == "ingested", status
            assert status["result"]["renditions"] == ["h264-144p-200k"] and status["result"]["chunk_count"] == 2
            size = master.stat().st_size
            assert status["files"]["master"] == {"hashed": size, "uploaded": size, "size": size}
            assert status["ended_ms"] >= status["started_ms"]
            assert len(set(seen)) >= 2, seen  # it moved through steps while it ran
            conforms(document, "/titles/{title_id}/ingest", "GET", 200, status)

    asyncio.run(scenario())


def test_a_store_that_is_down_fails_the_ingest_as_retryable_and_keeps_the_files(tmp_path: Path, master: Path) -> None:
    down = f"s3://masters?endpoint=http://127.0.0.1:{free_port()}"

    async def scenario() -> None:
        async with ingest_client(tmp_path, objects_url=down) as client:
            await client.put("/titles/down-1/files/film.mp4", data=master.read_bytes(),
                             headers={**AUTH, "Upload-Offset": "0"})
            failed = await client.post("/titles/down-1/ingest", headers=AUTH,
                                       data=json.dumps(title_metadata("down-1", master)))
            assert failed.status == 503 and "retry shortly" in (await failed.json())["error"]
            status = await (await client.get("/titles/down-1/ingest", headers=AUTH)).json()
            assert status["state"] == "failed" and status["result"] is None
            assert (tmp_path / "staging" / "down-1" / "film.mp4").stat().st_size == master.stat().st_size

    asyncio.run(scenario())


def test_without_a_valid_token_nothing_is_staged_or_ingested(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with ingest_client(tmp_path) as client:
            for headers in ({}, {"Authorization": "Bearer wrong-token-wrong-token-wrong"},
                            {"Authorization": f"Basic {TOKEN}"}):
                put = await client.put("/titles/x-1/files/film.mp4", data=b"x" * 1000,
                                       headers={**headers, "Upload-Offset": "0"})
                assert put.status == 401 and "ingest tokens" in (await put.json())["error"]
                post = await client.post("/titles/x-1/ingest", data=b"{}", headers=headers)
                assert post.status == 401
            assert not (tmp_path / "staging").exists()
            assert (await client.get("/openapi.json")).status == 200  # the document is public

    asyncio.run(scenario())


def test_a_running_ingest_keeps_its_files_and_runs_once(tmp_path: Path, master: Path) -> None:
    doc = title_metadata("busy-1", master)

    async def scenario() -> None:
        async with ingest_client(tmp_path) as client:
            url = "/titles/busy-1/files/film.mp4"
            await client.put(url, data=master.read_bytes(), headers={**AUTH, "Upload-Offset": "0"})
            running = asyncio.create_task(client.post("/titles/busy-1/ingest", headers=AUTH, data=json.dumps(doc)))
            staged = tmp_path / "staging" / "busy-1" / "title.json"
            while not staged.exists():  # written once the ingest holds the title
                await asyncio.sleep(0.002)
            overwrite = await client.put(url, data=b"other bytes", headers={**AUTH, "Upload-Offset": "0"})
            again = await client.post("/titles/busy-1/ingest", headers=AUTH, data=json.dumps(doc))
            first = await running
            assert first.status == 201, await first.text()
            assert overwrite.status == 409 and "ingest is running" in (await overwrite.json())["error"]
            assert again.status == 409

    asyncio.run(scenario())


def test_an_oversized_or_malformed_metadata_document_is_refused_in_json(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with ingest_client(tmp_path) as client:
            huge = await client.post("/titles/m-1/ingest", headers=AUTH, data=b" " * (1024 * 1024 + 10))
            assert huge.status == 413 and "larger than 1048576 bytes" in (await huge.json())["error"]
            bad = await client.post("/titles/m-1/ingest", headers=AUTH, data=b"[" * 100_000)
            assert bad.status == 400 and "metadata as JSON" in (await bad.json())["error"]
            bad_name = await client.put("/titles/m-1/files/..evil", headers={**AUTH, "Upload-Offset": "0"}, data=b"x")
            assert bad_name.status == 400 and "not allowed" in (await bad_name.json())["error"]

    asyncio.run(scenario())


def test_reel_ingest_server_refuses_to_start_without_tokens_and_serves_with_one(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "REEL_INGEST_TOKENS"}
    command = [sys.executable, "-m", "reelstream.cli", "ingest-server", "--data-dir", str(tmp_path / "reel")]
    refused = subprocess.run([*command, "--port", str(free_port())], env=env, capture_output=True, text=True,
                             timeout=60, check=False)
    assert refused.returncode == 2 and "REEL_INGEST_TOKENS: set at least one token" in refused.stderr
    short = subprocess.run([*command, "--port", str(free_port())], env={**env, "REEL_INGEST_TOKENS": "abc"},
                           capture_output=True, text=True, timeout=60, check=False)
    assert short.returncode == 2 and "shorter than 24 characters" in short.stderr
    port = free_port()
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen([*command, "--port", str(port)], stdout=subprocess.DEVNULL, stderr=log,
                              env={**env, "REEL_INGEST_TOKENS": f"other-{TOKEN},{TOKEN}"})
    try:
        base = f"http://127.0.0.1:{port}"

        def up() -> bool:
            try:
                return requests.get(f"{base}/openapi.json", timeout=2).status_code == 200
            except requests.ConnectionError:
                return False

        wait_for(up, 60, "reel ingest-server to answer")
        assert requests.head(f"{base}/titles/t-1/files/a.mp4", timeout=5).status_code == 401
        held = requests.head(f"{base}/titles/t-1/files/a.mp4", headers=AUTH, timeout=5)
        assert held.status_code == 200 and held.headers["Upload-Offset"] == "0"
        assert requests.get(f"{base}/{'x' * 10_000}", timeout=5).status_code == 400  # a scanner's request
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
    logged = (tmp_path / "server.log").read_text()
    assert "malformed request answered with 400" in logged and "Traceback" not in logged, logged


def test_a_second_writer_of_one_staged_file_is_refused_while_the_first_is_writing(tmp_path: Path) -> None:
    first_bytes, started, go_on = b"a" * 300_000, asyncio.Event(), asyncio.Event()

    async def slow_body() -> AsyncIterator[bytes]:
        yield first_bytes[:100_000]
        started.set()
        await go_on.wait()
        yield first_bytes[100_000:]

    async def scenario() -> None:
        async with ingest_client(tmp_path) as client:
            url = "/titles/two-1/files/film.mp4"
            first = asyncio.create_task(client.put(url, data=slow_body(), headers={**AUTH, "Upload-Offset": "0"}))
            await started.wait()
            staged = tmp_path / "staging" / "two-1" / "film.mp4"
            while not staged.exists() or staged.stat().st_size == 0:  # the first writer holds the file
                await asyncio.sleep(0.005)
            # A second client asks where the file stands and resumes from there, mid-write.
            where = (await client.head(url, headers=AUTH)).headers["Upload-Offset"]
            second = await client.put(url, data=b"b" * 1000, headers={**AUTH, "Upload-Offset": where})
            go_on.set()
            done = await first
            assert second.status == 409 and "another upload of film.mp4" in (await second.json())["error"]
            assert done.status == 204 and staged.read_bytes() == first_bytes

    asyncio.run(scenario())


def test_a_polled_status_shows_how_far_validation_has_read_the_master(tmp_path: Path) -> None:
    long_master = make_master(tmp_path / "film.mp4", seconds=40, languages=("en",))  # validation reads all of it
    doc = title_metadata("read-1", long_master, languages=("en",))
    size = long_master.stat().st_size

    async def scenario() -> None:
        async with ingest_client(tmp_path) as client:
            document = await (await client.get("/openapi.json")).json()
            status_path = "/titles/read-1/ingest"
            await client.put("/titles/read-1/files/film.mp4", data=long_master.read_bytes(),
                             headers={**AUTH, "Upload-Offset": "0"})
            await client.post(status_path, headers={**AUTH, "Prefer": "respond-async"}, data=json.dumps(doc))
            readings = []
            while (status := await (await client.get(status_path, headers=AUTH)).json())["state"] == "running":
                if status["reading"] is not None:
                    readings.append(status)
                await asyncio.sleep(0.005)
            assert status["state"] == "ingested" and status["reading"] is None, status
            assert readings, "no poll saw a media command reading the master"
            seen = readings[-1]
            assert seen["step"] == "validating the master and sidecars"
            assert seen["reading"]["file"] == "film.mp4" and seen["reading"]["size"] == size
            assert 0 <= seen["reading"]["done"] <= size
            conforms(document, "/titles/{title_id}/ingest", "GET", 200, seen)

    asyncio.run(scenario())
