"""The pure side of packaging in the event flow (``reelstream.processors.packaging``):
what a TitleTranscoded event asks for, the events that announce packages, and the
``title_packages`` view. (Here rather than in tests/unit/processors: this feature's tests
live with the packager's.)"""

from __future__ import annotations

from reelstream.events.codec import EventCodec
from reelstream.events.model import Event, new_event
from reelstream.media.package.model import Package, PackagedTrack
from reelstream.processors.packaging.logic import (
    TITLE_PACKAGES,
    PackagingProcessor,
    packaged_events,
    plan,
)
from tests.support.memory_state import MemoryState


def transcoded(event_id: str = "11111111-1111-1111-1111-111111111111") -> Event:
    return new_event("TitleTranscoded", {
        "title_id": "t1", "rendition_ids": ["h264-360p-800k", "hevc-2160p-15000k-hdr"],
        "audio_track_ids": ["audio-en"], "subtitle_track_ids": ["text-fr"], "chunk_count": 3},
        producer="test", event_id=event_id)


def package(request_id: str, scheme: str) -> Package:
    video = PackagedTrack("h264-360p-800k", "video", "avc1.64001e", 1, 1, 24, "v/init.mp4", "v/{number}", (),
                          key_id="ab" * 16, key_class="SD")
    text = PackagedTrack("text-fr", "text", "wvtt", 1, 1, 1000, "", "t/{number}", ())
    return Package("t1", request_id, scheme, f"packages/t1/{request_id}/", 6.0, (video, text))  # type: ignore[arg-type]


def test_one_package_per_scheme_with_stable_ids() -> None:
    requests = plan(transcoded(), ["cenc", "cbcs", "cenc"])
    assert [r.scheme for r in requests] == ["cenc", "cbcs"]
    assert [r.package_id for r in requests] == [r.package_id for r in plan(transcoded(), ["cenc", "cbcs"])]
    assert all(r.package_id.startswith(f"{r.scheme}-") for r in requests)
    other = plan(transcoded("22222222-2222-2222-2222-222222222222"), ["cenc"])[0]
    assert other.package_id != requests[0].package_id  # a new transcode is a new package
    r = requests[1]
    assert (r.renditions, r.audio, r.subtitles) == (("h264-360p-800k", "hevc-2160p-15000k-hdr"),
                                                   ("audio-en",), ("text-fr",))
    assert r.storage_prefix == f"packages/t1/{r.package_id}/"
    assert plan(new_event("TitlePublished", {"title_id": "t1", "package_id": "x"}, producer="t")) == []


def test_packaged_then_published_with_derived_ids_and_valid_schemas() -> None:
    cause = transcoded()
    packages = [package(r.package_id, r.scheme) for r in plan(cause)]
    events = packaged_events(cause, packages)
    assert [e.type for e in events] == ["TitlePackaged", "TitlePackaged", "TitlePublished", "TitlePublished"]
    assert [e.event_id for e in events] == [e.event_id for e in packaged_events(cause, packages)]
    assert events[0]["rendition_ids"] == ["h264-360p-800k"] and events[1]["schemes"] == ["cbcs"]
    assert all(e.header.causation_id == cause.event_id for e in events)
    codec = EventCodec()
    for e in events:
        assert codec.decode(codec.encode(e, "reel.catalog")).data == e.data


def test_view_keeps_the_live_package_per_scheme() -> None:
    cause = transcoded()
    events = packaged_events(cause, [package(r.package_id, r.scheme) for r in plan(cause)])
    state, processor = MemoryState(), PackagingProcessor()
    for e in events[:2]:
        state.apply(processor.handle(e, state))
    assert state.get(TITLE_PACKAGES, ("t1", "cbcs")).values["status"] == "PACKAGED"  # type: ignore[union-attr]
    for e in events[2:]:
        state.apply(processor.handle(e, state))
    rows = state.query(TITLE_PACKAGES, ("t1",))
    assert [(r.values["scheme"], r.values["status"], r.values["published_package_id"]) for r in rows] == [
        ("cbcs", "PUBLISHED", events[1]["package_id"]), ("cenc", "PUBLISHED", events[0]["package_id"])]
    # TitlePublished read before its TitlePackaged (no order across partitions is assumed)
    state = MemoryState()
    state.apply(processor.handle(events[2], state))
    state.apply(processor.handle(events[0], state))
    row = state.get(TITLE_PACKAGES, ("t1", "cenc"))
    assert row is not None and row.values["status"] == "PUBLISHED"
    assert processor.primary(transcoded()) is None
