"""Series data (TitleRegistered v3): parsed from title.json with every bad field named,
materialized by the catalog processor into the series' episode list."""

from __future__ import annotations

from typing import Any

from reelstream.events.model import new_event
from reelstream.ingest.metadata import parse_metadata
from reelstream.processors.catalog.logic import EPISODES, TITLES, CatalogProcessor
from tests.unit.ingest.test_metadata_and_subtitles import GOOD


def test_series_and_end_credits_parse_into_the_registered_event() -> None:
    doc = {**GOOD, "series": {"series_id": "the-show", "series_title": "The Show", "season": 2, "episode": 5},
           "end_credits_start_ms": 2_580_000}
    meta, reasons = parse_metadata(doc)
    assert reasons == [] and meta is not None
    data = meta.registered_data()
    assert data["series"] == {"series_id": "the-show", "series_title": "The Show", "season": 2, "episode": 5}
    assert data["end_credits_start_ms"] == 2_580_000
    new_event("TitleRegistered", data, producer="test")  # valid against the v3 schema
    film, reasons = parse_metadata(GOOD)
    assert reasons == [] and film is not None and film.registered_data()["series"] is None


def test_bad_series_fields_are_each_named() -> None:
    doc: dict[str, Any] = {**GOOD, "series": {"series_id": "Bad Id!", "season": -1, "episode": "3"},
                           "end_credits_start_ms": 0}
    _, reasons = parse_metadata(doc)
    assert {r.field for r in reasons} == {"series.series_id", "series.season", "series.episode",
                                          "end_credits_start_ms"}
    _, reasons = parse_metadata({**GOOD, "series": "the-show"})
    assert [r.field for r in reasons] == ["series"]


class _Empty:
    def get(self, spec: Any, key: Any) -> None:
        return None

    def query(self, spec: Any, partition: Any) -> list[Any]:
        return []


def test_the_catalog_processor_lists_episodes_by_season_and_episode() -> None:
    meta, _ = parse_metadata({**GOOD, "series": {"series_id": "the-show", "season": 1, "episode": 3}})
    assert meta is not None
    outcome = CatalogProcessor().handle(new_event("TitleRegistered", meta.registered_data(), producer="test"),
                                        _Empty())
    episodes = [v for spec, v in outcome.writes if spec is EPISODES]
    assert episodes == [{"series_id": "the-show", "season": 1, "episode": 3, "title_id": meta.title_id,
                         "series_title": None}]
    assert [spec for spec, _ in outcome.writes][-1] is TITLES  # the primary row last
