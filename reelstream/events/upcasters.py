"""Upcasters: turn an event read with an older schema into the current shape.

Avro schema resolution already fills added fields from their defaults; an upcaster is
needed only when a change means more than that (a renamed field, a split value). Each
step is registered for one (event type, from version) and tested on its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from reelstream.events.model import Event

Upcaster = Callable[[Event], Event]

# (event type, version it upgrades from) -> function producing version + 1.
_STEPS: dict[tuple[str, int], Upcaster] = {}


def upcaster(event_type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
    def register(fn: Upcaster) -> Upcaster:
        _STEPS[(event_type, from_version)] = fn
        return fn

    return register


def upcast(event: Event, from_version: int, to_version: int) -> Event:
    version = from_version
    while version < to_version:
        step = _STEPS.get((event.type, version))
        if step is not None:
            event = step(event)
        version += 1
    if event.header.schema_version != to_version:
        event = replace(event, header=replace(event.header, schema_version=to_version))
    return event


@upcaster("TitleRegistered", 1)
def _title_registered_v1_to_v2(event: Event) -> Event:
    # v2 added ``genres``; Avro resolution fills the default [], and titles registered
    # before genres existed are catalogued as "uncategorised" rather than genre-less.
    if not event.data.get("genres"):
        return event.with_data(genres=["uncategorised"])
    return event
