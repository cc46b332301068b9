"""The HTTP ingest endpoint against the real app factory: resumable pieces, then ingest or 422."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from reelstream.config import Settings
from reelstream.gateways.ingest import create_app
from reelstream.media.transcode.ladder import Rung
from reelstream.runtime import Runtime
from tests.support.media import make_master, title_metadata


def test_resumable_http_upload_then_ingest_and_a_422_with_reasons(tmp_path: Path) -> None:
    master = make_master(tmp_path / "film.mp4", seconds=3)
    data = master.read_bytes()
    doc = title_metadata("web-1", master)

    async def scenario() -> None:
        runtime = Runtime(Settings(data_dir=tmp_path / "reel"))
        app = create_app(runtime, tmp_path / "staging", (Rung("h264", 144, 200),))
        async with TestClient(TestServer(app)) as client:
            url = "/titles/web-1/files/film.mp4"
            first = await client.put(url, data=data[:100_000], headers={"Upload-Offset": "0"})
            assert first.status == 204 and first.headers["Upload-Offset"] == "100000"
            stale = await client.put(url, data=data[50_000:], headers={"Upload-Offset": "50000"})
            assert stale.status == 409 and stale.headers["Upload-Offset"] == "100000"
            offset = int((await client.head(url)).headers["Upload-Offset"])  # resume where the server is
            rest = await client.put(url, data=data[offset:], headers={"Upload-Offset": str(offset)})
            assert rest.headers["Upload-Offset"] == str(len(data))
            bad = await client.post("/titles/web-1/ingest", data=json.dumps({**doc, "master": {
                "file": "film.mp4", "sha256": "1" * 64}}))
            assert bad.status == 422
            assert [r["code"] for r in (await bad.json())["reasons"]] == ["CHECKSUM_MISMATCH"]
            ok = await client.post("/titles/web-1/ingest", data=json.dumps(doc))
            assert ok.status == 201, await ok.text()
            body = await ok.json()
            assert body["renditions"] == ["h264-144p-200k"] and body["chunk_count"] == 2

    asyncio.run(scenario())
