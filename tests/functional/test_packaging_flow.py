"""Packaging in the event flow, on the embedded runtime: TitleTranscoded in, a package per
scheme on the object store, TitlePackaged and TitlePublished on the log, the catalog
view PUBLISHED. Real ffmpeg-made media, the real key service (envelope-encrypted keys in
the state store), the real packager.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from reelstream.config import Settings
from reelstream.events.model import Event, new_event
from reelstream.keys.config import key_service
from reelstream.media.package.errors import MissingInput
from reelstream.media.package.model import Package
from reelstream.processors.catalog.logic import PUBLISHED, TITLES, CatalogProcessor
from reelstream.processors.embedded import run_embedded
from reelstream.processors.packaging.logic import (
    TITLE_PACKAGES,
    PackageRequest,
    PackagingProcessor,
    plan,
)
from reelstream.runtime import Runtime
from reelstream.workers.package import PackageWorker
from tests.support.media_fixtures import (
    DEFAULT_AUDIO,
    DEFAULT_RENDITIONS,
    DEFAULT_SUBTITLES,
    build_media,
    upload_title,
)

ENV = {"REEL_KEK": base64.b64encode(bytes(range(32))).decode()}
RENDITIONS = [r.rendition_id for r in DEFAULT_RENDITIONS]


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_media(tmp_path_factory.mktemp("media"))


@pytest.fixture
def runtime(tmp_path: Path, media: Path):  # type: ignore[no-untyped-def]
    rt = Runtime(Settings(data_dir=tmp_path / "reel"))
    upload_title(rt.objects, "film-1", media)
    yield rt
    rt.close()


def transcoded(runtime: Runtime, title_id: str = "film-1") -> Event:
    event = new_event("TitleTranscoded", {
        "title_id": title_id, "rendition_ids": RENDITIONS, "audio_track_ids": list(DEFAULT_AUDIO),
        "subtitle_track_ids": list(DEFAULT_SUBTITLES), "chunk_count": 2}, producer="test", correlation_id=title_id)
    runtime.publish(event)
    return event


def catalog(runtime: Runtime) -> list[Event]:
    reader = runtime.log.consumer(["reel.catalog"], group_id=None)
    out = [runtime.codec.decode(r.value) for r in reader.poll(max_records=100_000, timeout=1)]
    reader.close()
    return out


def worker(runtime: Runtime, fault: Callable[[PackageRequest], None] | None = None) -> PackageWorker:
    return PackageWorker(runtime, lambda: key_service(runtime, ENV), fault=fault)


def run_processors_until(runtime: Runtime, done: Callable[[], bool], timeout: float = 60) -> None:
    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(run_embedded([CatalogProcessor(), PackagingProcessor()], runtime.log,
                                                runtime.state, runtime.codec, "test", stop))
        deadline = time.monotonic() + timeout
        while not done():
            assert time.monotonic() < deadline, "the catalog did not catch up in time"
            await asyncio.sleep(0.1)
        stop.set()
        await task

    asyncio.run(main())


def status(runtime: Runtime, title_id: str = "film-1") -> str | None:
    row = runtime.state.get(TITLES, (title_id,))
    return row.values["status"] if row else None


def test_transcoded_title_is_packaged_published_and_in_the_catalog(runtime: Runtime) -> None:
    cause = transcoded(runtime)
    stats = worker(runtime).run(lambda: False, idle_exit_s=1.0)
    assert (stats.packaged, stats.reused, stats.failed) == (2, 0, 0)
    events = [e for e in catalog(runtime) if e.type in ("TitlePackaged", "TitlePublished")]
    assert [(e.type, e["package_id"].split("-")[0]) for e in events] == [
        ("TitlePackaged", "cenc"), ("TitlePackaged", "cbcs"), ("TitlePublished", "cenc"), ("TitlePublished", "cbcs")]
    assert all(e.header.causation_id == cause.event_id for e in events)
    packages = {}
    for e in events[:2]:
        stored = Package.from_json(runtime.objects.get(e["storage_prefix"] + "package.json").decode())
        assert stored.scheme == e["schemes"][0] and e["rendition_ids"] == RENDITIONS
        assert {t.track_id for t in stored.tracks} == set(RENDITIONS) | set(DEFAULT_AUDIO) | set(DEFAULT_SUBTITLES)
        packages[stored.scheme] = stored
    # each scheme under its own keys, all of them the key service's (wrapped in the state store)
    service = key_service(runtime, ENV)
    for scheme, package in packages.items():
        ids = service.key_ids("film-1", scheme)
        assert {t.key_id for t in package.tracks if t.key_id} == {ids["SD"], ids["AUDIO"]}
    assert not {t.key_id for t in packages["cenc"].tracks} & {t.key_id for t in packages["cbcs"].tracks} - {None}
    # events name packages and key ids only
    keys = [service.key_for_kid("film-1", t.key_id) for p in packages.values() for t in p.tracks if t.key_id]
    raw = b"".join(r.value for r in runtime.log.consumer(["reel.catalog", "reel.keys"], None).poll(100_000, 1))
    assert keys and not any(k.key in raw or k.key.hex().encode() in raw for k in keys)

    run_processors_until(runtime, lambda: status(runtime) == PUBLISHED)
    row = runtime.state.get(TITLES, ("film-1",))
    assert row is not None and row.values["package"]["published_package_id"] in {
        p.package_id for p in packages.values()}
    for scheme, package in packages.items():
        live = runtime.state.get(TITLE_PACKAGES, ("film-1", scheme))
        assert live is not None and live.values["published_package_id"] == package.package_id
        assert live.values["storage_prefix"] == package.storage_prefix and live.values["status"] == "PUBLISHED"


def test_redelivered_event_packages_nothing_again_and_re_emits_the_same_events(runtime: Runtime) -> None:
    cause = transcoded(runtime)
    first = worker(runtime)
    first.run(lambda: False, idle_exit_s=1.0)
    before = {o.key: o.size for o in runtime.objects.list("packages/film-1/")}
    again = worker(runtime)
    replayed = again.handle(cause)  # what a redelivery of the same record does
    assert (again.stats.packaged, again.stats.reused) == (0, 2)
    assert {o.key: o.size for o in runtime.objects.list("packages/film-1/")} == before
    emitted = [e for e in catalog(runtime) if e.type in ("TitlePackaged", "TitlePublished")]
    assert [e.event_id for e in replayed] == [e.event_id for e in emitted]
    assert [dict(e.data) for e in replayed] == [dict(e.data) for e in emitted]


def test_a_failed_package_publishes_nothing_and_the_title_is_not_published(runtime: Runtime) -> None:
    cause = transcoded(runtime)

    def fail_cbcs(request: PackageRequest) -> None:
        if request.scheme == "cbcs":
            raise MissingInput(f"injected: {request.package_id}")

    stats = worker(runtime, fault=fail_cbcs).run(lambda: False, idle_exit_s=1.0)
    assert (stats.packaged, stats.failed) == (1, 1)
    assert not [e for e in catalog(runtime) if e.type in ("TitlePackaged", "TitlePublished")]
    cbcs = next(r for r in plan(cause) if r.scheme == "cbcs")
    assert not list(runtime.objects.list(cbcs.storage_prefix))
    # packaging it again (an operator re-emitting the event) reuses the cenc package
    retry = worker(runtime)
    events = retry.handle(cause)
    assert (retry.stats.reused, retry.stats.packaged) == (1, 1)
    assert [e.type for e in events] == ["TitlePackaged", "TitlePackaged", "TitlePublished", "TitlePublished"]
