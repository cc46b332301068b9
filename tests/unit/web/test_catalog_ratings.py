"""The page's catalog names each title's rating and the age band the manifest gateway holds
profiles to (``policy.maturity_problem``), so the page can mark what a profile cannot open;
a title with no rating (ingested before ratings were checked) counts as 18+, as there."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from reelstream.config import Settings
from reelstream.processors.catalog.logic import PUBLISHED, REGISTERED, TITLES
from reelstream.runtime import Runtime
from reelstream.stores.ports import Row
from reelstream.web.app import web_app


def title(title_id: str, status: str, metadata: dict[str, Any]) -> Row:
    return Row({"title_id": title_id, "title": title_id.title(), "status": status, "metadata": metadata,
                "ingest": None, "rejections": None, "renditions": None, "package": None, "updated_ms": 0})


async def test_each_published_title_comes_with_its_rating_and_age_band(tmp_path: Path) -> None:
    runtime = Runtime(Settings(data_dir=tmp_path / "reel"))
    runtime.state.ensure_views([TITLES])
    runtime.state.put(TITLES, title("cartoon", PUBLISHED, {"rating": {"system": "MPAA", "value": "G"}}))
    runtime.state.put(TITLES, title("drama", PUBLISHED, {"rating": {"system": "BBFC", "value": "15"}}))
    runtime.state.put(TITLES, title("archive", PUBLISHED, {}))
    runtime.state.put(TITLES, title("unfinished", REGISTERED, {"rating": {"system": "MPAA", "value": "R"}}))
    app = web.Application()
    app.add_subapp("/web", web_app(runtime))
    try:
        async with TestClient(TestServer(app)) as client:
            titles = (await (await client.get("/web/api/catalog")).json())["titles"]
    finally:
        runtime.close()
    assert {t["title_id"]: (t["rating"], t["min_age"]) for t in titles} == {
        "cartoon": ({"system": "MPAA", "value": "G"}, 0),
        "drama": ({"system": "BBFC", "value": "15"}, 16),
        "archive": (None, 18),  # unrated: kept from every profile below 18+, as the gateway does
    }
