"""The catalog: each title's state from registration to publication."""

from __future__ import annotations

from typing import Any

from reelstream.events.model import Event
from reelstream.processors.base import Outcome, Processor, StateReader, millis
from reelstream.stores.ports import Column, ViewSpec

# Partition key: title_id. Read by the gateways for one title at a time.
TITLES = ViewSpec(
    name="titles", partition_key=("title_id",), clustering_key=(),
    columns={"title_id": Column.TEXT, "title": Column.TEXT, "status": Column.TEXT, "metadata": Column.JSON, "ingest": Column.JSON,
             "rejections": Column.JSON, "renditions": Column.JSON, "package": Column.JSON,
             "updated_ms": Column.BIGINT},
    query="a title's catalog entry and lifecycle status, by title id",
)

# Partition key: series_id; clustering key: (season, episode). "Continue watching" reads
# a series' episodes in order to find the one after an episode just watched.
EPISODES = ViewSpec(
    name="series_episodes", partition_key=("series_id",), clustering_key=("season", "episode"),
    columns={"series_id": Column.TEXT, "season": Column.INT, "episode": Column.INT, "title_id": Column.TEXT,
             "series_title": Column.TEXT},
    query="a series' episodes in season and episode order, by series id",
)

REGISTERED, UPLOADED, VALIDATED, REJECTED, PACKAGED, PUBLISHED = (
    "REGISTERED", "UPLOADED", "VALIDATED", "REJECTED", "PACKAGED", "PUBLISHED")


def _jsonable(value: Any) -> Any:
    if hasattr(value, "timestamp"):
        return millis(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


class CatalogProcessor(Processor):
    name = "catalog"
    topics = ("reel.catalog",)
    views = (TITLES, EPISODES)

    def primary(self, event: Event) -> tuple[ViewSpec, tuple[Any, ...]] | None:
        return TITLES, (event["title_id"],)

    def handle(self, event: Event, state: StateReader) -> Outcome:
        current = state.get(TITLES, (event["title_id"],))
        row: dict[str, Any] = dict(current.values) if current else {
            "title_id": event["title_id"], "title": None, "status": None, "metadata": None, "ingest": None,
            "rejections": [], "renditions": {}, "package": None, "updated_ms": None}
        row["updated_ms"] = millis(event.header.event_time)
        outcome = Outcome()
        data = {k: _jsonable(v) for k, v in event.data.items()}
        match event.type:
            case "TitleRegistered":
                row.update(title=data["title"], metadata=data, status=row["status"] or REGISTERED)
                if (series := data.get("series")) is not None:
                    outcome.write(EPISODES, {"series_id": series["series_id"], "season": series["season"],
                                             "episode": series["episode"], "title_id": event["title_id"],
                                             "series_title": series.get("series_title")})
            case "MezzanineUploaded":
                uploads = dict((row["ingest"] or {}).get("uploads", {}))
                uploads[data["object_key"]] = {k: data[k] for k in ("asset_kind", "language", "size_bytes", "sha256")}
                row["ingest"] = {**(row["ingest"] or {}), "uploads": uploads}
                if row["status"] in (None, REGISTERED, REJECTED):
                    row["status"] = UPLOADED
            case "IngestValidated":
                row["ingest"] = {**(row["ingest"] or {}), "validated": data}
                row["status"], row["rejections"] = VALIDATED, []
            case "IngestRejected":
                row["status"], row["rejections"] = REJECTED, data["reasons"]
            case "RenditionCompleted":
                row["renditions"] = {**(row["renditions"] or {}), data["rendition_id"]: data}
            case "TitlePackaged":
                row["status"], row["package"] = PACKAGED, data
            case "TitlePublished":
                row["status"] = PUBLISHED
                row["package"] = {**(row["package"] or {}), "published_package_id": data["package_id"]}
        return outcome.write(TITLES, row)
