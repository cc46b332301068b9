"""Packaging in the event flow: what to package when a title is transcoded, what to
announce once it is, and which package is live per scheme. Pure: no I/O.

    TitleTranscoded ──plan()──> PackageRequest per scheme ──(worker: package_title)──>
    TitlePackaged per package, then TitlePublished per package   (packaged_events())

A title is packaged once per scheme ('cenc' and 'cbcs' by default) as separate packages,
each under its own keys (``reelstream.keys.model.key_slot``): devices that need 'cbcs'
(FairPlay, recent Widevine/PlayReady) and those that need 'cenc' each get one.

Package ids are derived from the TitleTranscoded event's id and the scheme, so a
redelivered event names the same packages (the worker then finds their ``package.json``
and packages nothing again), and the events announcing them get the same ids (consumers
de-duplicate on ``event_id``). A title transcoded again is a new event: new packages.

``PackagingProcessor`` keeps the ``title_packages`` view: per title and scheme, the
package that was packaged and the one that is live, which is what the manifest gateway
needs to find (the catalog row holds only the last TitlePackaged).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from reelstream.events.model import Event, new_event
from reelstream.media.package.model import Package, Scheme
from reelstream.processors.base import Outcome, Processor, StateReader, millis
from reelstream.stores.ports import Column, ViewSpec

PRODUCER = "worker.package"
DEFAULT_SCHEMES: tuple[Scheme, ...] = ("cenc", "cbcs")
FORMATS = ("hls", "dash")  # both manifests are made per request from package.json (gateways)
_EVENT_IDS = uuid.UUID("6c1f2a0e-8d7b-4e55-9a1c-3b2d4f6e8a90")

# Partition key: title_id; clustering: scheme. The gateway reads a title's live package per scheme.
TITLE_PACKAGES = ViewSpec(
    name="title_packages", partition_key=("title_id",), clustering_key=("scheme",),
    columns={"title_id": Column.TEXT, "scheme": Column.TEXT, "package_id": Column.TEXT,
             "storage_prefix": Column.TEXT, "status": Column.TEXT, "published_package_id": Column.TEXT,
             "updated_ms": Column.BIGINT},
    query="a title's packages per protection scheme, and which one is live",
)
PACKAGED, PUBLISHED = "PACKAGED", "PUBLISHED"


@dataclass(frozen=True)
class PackageRequest:
    """One package to make: a title's renditions, audio and subtitles in one scheme."""

    title_id: str
    package_id: str
    scheme: Scheme
    renditions: tuple[str, ...]
    audio: tuple[str, ...]
    subtitles: tuple[str, ...]

    @property
    def storage_prefix(self) -> str:
        return f"packages/{self.title_id}/{self.package_id}/"


def package_id_for(transcoded: Event, scheme: str) -> str:
    """``{scheme}-{12 hex}``: stable for one TitleTranscoded event, new for the next."""
    digest = hashlib.sha256(f"{transcoded.event_id}/{scheme}".encode()).hexdigest()[:12]
    return f"{scheme}-{digest}"


def plan(transcoded: Event, schemes: Sequence[Scheme] = DEFAULT_SCHEMES) -> list[PackageRequest]:
    """The packages a TitleTranscoded event asks for, one per scheme."""
    if transcoded.type != "TitleTranscoded":
        return []
    if not transcoded["rendition_ids"]:
        return []  # nothing to play: TitleTranscoded with no rendition is not packaged
    return [PackageRequest(transcoded["title_id"], package_id_for(transcoded, scheme), scheme,
                           tuple(transcoded["rendition_ids"]), tuple(transcoded["audio_track_ids"]),
                           tuple(transcoded["subtitle_track_ids"]))
            for scheme in dict.fromkeys(schemes)]


def event_id_for(transcoded: Event, kind: str, package_id: str) -> str:
    return str(uuid.uuid5(_EVENT_IDS, f"{transcoded.event_id}/{kind}/{package_id}"))


def packaged_events(transcoded: Event, packages: Sequence[Package], producer: str = PRODUCER) -> list[Event]:
    """TitlePackaged for every package, then TitlePublished for every package: a title is
    published only once all its schemes are packaged. Key ids only, never keys (the
    package's tracks carry them; these events name the package)."""
    out = []
    for p in packages:
        out.append(new_event("TitlePackaged", {
            "title_id": p.title_id, "package_id": p.package_id, "formats": list(FORMATS), "schemes": [p.scheme],
            "storage_prefix": p.storage_prefix,
            "rendition_ids": [t.track_id for t in p.tracks if t.kind == "video"]},
            producer=producer, caused_by=transcoded, event_id=event_id_for(transcoded, "packaged", p.package_id)))
    for p in packages:
        out.append(new_event("TitlePublished", {"title_id": p.title_id, "package_id": p.package_id},
                             producer=producer, caused_by=transcoded,
                             event_id=event_id_for(transcoded, "published", p.package_id)))
    return out


def scheme_of(package_id: str) -> str:
    return package_id.split("-", 1)[0]


class PackagingProcessor(Processor):
    """Per title and scheme: the last package made and the one that is live."""

    name = "packaging"
    topics = ("reel.catalog",)
    views = (TITLE_PACKAGES,)

    def primary(self, event: Event) -> tuple[ViewSpec, tuple[Any, ...]] | None:
        if event.type == "TitlePackaged":
            return TITLE_PACKAGES, (event["title_id"], event["schemes"][0] if event["schemes"] else "clear")
        if event.type == "TitlePublished":
            return TITLE_PACKAGES, (event["title_id"], scheme_of(event["package_id"]))
        return None

    def handle(self, event: Event, state: StateReader) -> Outcome:
        spec, key = self.primary(event) or (TITLE_PACKAGES, ())
        current = state.get(spec, key)
        row: dict[str, Any] = dict(current.values) if current else {
            "title_id": key[0], "scheme": key[1], "package_id": None, "storage_prefix": None,
            "status": None, "published_package_id": None, "updated_ms": None}
        row["updated_ms"] = millis(event.header.event_time)
        if event.type == "TitlePackaged":
            row.update(package_id=event["package_id"], storage_prefix=event["storage_prefix"],
                       status=PACKAGED if row["published_package_id"] != event["package_id"] else PUBLISHED)
        else:
            row.update(published_package_id=event["package_id"], status=PUBLISHED)
            if row["package_id"] is None:  # published before its TitlePackaged was read
                row["package_id"] = event["package_id"]
                row["storage_prefix"] = f"packages/{event['title_id']}/{event['package_id']}/"
        return Outcome().write(TITLE_PACKAGES, row)
