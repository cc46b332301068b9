"""Key ids per title (never key bytes): what the packager and license server look up."""

from __future__ import annotations

from typing import Any

from reelstream.events.model import Event
from reelstream.processors.base import Outcome, Processor, StateReader
from reelstream.stores.ports import Column, ViewSpec

# Partition key: title_id.
CONTENT_KEY_IDS = ViewSpec(
    name="content_key_ids", partition_key=("title_id",), clustering_key=(),
    columns={"title_id": Column.TEXT, "keys": Column.JSON, "key_provider": Column.TEXT},
    query="the key ids and key classes of a title",
)


class KeyCatalogProcessor(Processor):
    name = "keys"
    topics = ("reel.keys",)
    views = (CONTENT_KEY_IDS,)

    def primary(self, event: Event) -> tuple[ViewSpec, tuple[Any, ...]] | None:
        return CONTENT_KEY_IDS, (event["title_id"],)

    def handle(self, event: Event, state: StateReader) -> Outcome:
        keys = [{"key_id": k["key_id"], "key_class": k["key_class"]} for k in event["keys"]]
        return Outcome().write(CONTENT_KEY_IDS, {"title_id": event["title_id"], "keys": keys,
                                                 "key_provider": event["key_provider"]})
