"""Title popularity from playback events: what the ISP appliances hold and what the
steering server sends to them.

One row per title in a single partition (``scope`` = "all"), counting sessions started
(``PlaybackStarted``), with an exponential decay so yesterday's hit fades: each start
adds 1 and the running score halves every ``HALF_LIFE_MS`` of event time. The list the
edges read is ``popular_titles(rows)``: the top titles by score (a pure function, so the
appliance map and the steering ranking use the same list).

The score is a float fold, so its last bits depend on the order starts are folded in (a
live run and a replay read partitions in different orders); an exact, order-free sum would
need more than the DOUBLE column holds, so ``reel replay --verify`` compares DOUBLE columns
to a relative tolerance (``replay.DOUBLE_REL_TOL``) instead.

A retried start post (same event id, see the playback gateway's ``seq``) counts again
here: the score only ranks titles for cache placement, where a retry's extra start is
noise, and a per-title window of recent ids would not hold a hit title's retries (it
starts many times a second) while the edge reads every row of this one partition.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from reelstream.events.model import Event
from reelstream.processors.base import Outcome, Processor, StateReader, millis
from reelstream.stores.ports import Column, Row, ViewSpec

SCOPE = "all"
HALF_LIFE_MS = 24 * 3600 * 1000  # a day: a title must keep being watched to stay on the appliances

# Partition key: scope (one partition: the edge tier reads the whole list at once; a
# catalog of 50,000 titles is 50,000 small rows, well within one Cassandra partition).
TITLE_POPULARITY = ViewSpec(
    name="title_popularity", partition_key=("scope",), clustering_key=("title_id",),
    columns={"scope": Column.TEXT, "title_id": Column.TEXT, "starts": Column.BIGINT, "score": Column.DOUBLE,
             "scored_at_ms": Column.BIGINT},
    query="every title's play score, for the edge's popularity list")


def decayed(score: float, from_ms: int, to_ms: int) -> float:
    return float(score * 0.5 ** (max(0, to_ms - from_ms) / HALF_LIFE_MS))


class PopularityProcessor(Processor):
    name = "popularity"
    topics = ("reel.playback",)
    views = (TITLE_POPULARITY,)

    def primary(self, event: Event) -> tuple[ViewSpec, tuple[Any, ...]] | None:
        if event.type != "PlaybackStarted":
            return None
        return TITLE_POPULARITY, (SCOPE, event["title_id"])

    def handle(self, event: Event, state: StateReader) -> Outcome:
        now = millis(event.header.event_time) or 0
        row = state.get(TITLE_POPULARITY, (SCOPE, event["title_id"]))
        starts, score, at = 0, 0.0, now
        if row is not None:
            starts, score, at = row.values["starts"], row.values["score"], row.values["scored_at_ms"]
        # Events may arrive out of order: decay toward the later of the two moments.
        later = max(now, at)
        score = decayed(score, at, later) + decayed(1.0, now, later)
        return Outcome().write(TITLE_POPULARITY, {"scope": SCOPE, "title_id": event["title_id"],
                                                  "starts": starts + 1, "score": score, "scored_at_ms": later})


def popular_titles(rows: Iterable[Row], top_n: int = 1000, min_starts: int = 1,
                   now_ms: int | None = None) -> list[str]:
    """The ``top_n`` titles by score decayed to ``now_ms`` (default: the newest row's time),
    ties by title id, each started at least ``min_starts`` times."""
    values = [row.values for row in rows if row.values["starts"] >= min_starts]
    at = now_ms if now_ms is not None else max((v["scored_at_ms"] for v in values), default=0)
    scored = [(-decayed(v["score"], v["scored_at_ms"], at), v["title_id"]) for v in values]
    return [title for _, title in sorted(scored)[:top_n]]
