"""Two runs of one package id at once (a redelivered TitleTranscoded handled while the first
worker is still packaging it, after a consumer-group rebalance). The 'already published' check
happens before the writes, so both runs write: they must write the same bytes, and a run that
fails must not remove what the other published."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from reelstream.errors import ObjectStoreError
from reelstream.media.encrypt.keys import InMemoryKeyProvider
from reelstream.media.package.packager import package_title
from reelstream.stores.localdir import LocalDirObjectStore
from tests.support.media_fixtures import Rendition, build_media, upload_title

RENDITIONS = ["h264-180p-300k"]
TRACK = "packages/t1/p1/h264-180p-300k/"


class LateRun:
    """The second worker's view of the bucket: its first write waits until told to go (it is
    the slower run); with ``fail_at`` its n-th write fails (a dropped connection)."""

    def __init__(self, inner: LocalDirObjectStore, go: threading.Event, fail_at: int | None = None) -> None:
        self.inner, self.go, self.fail_at, self.puts = inner, go, fail_at, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def put(self, key: str, data: Any, **kw: Any) -> Any:
        self.puts += 1
        if self.puts == 1:
            self.go.wait(60)
        if self.puts == self.fail_at:
            raise ObjectStoreError(f"injected failure writing {key}")
        return self.inner.put(key, data, **kw)


@pytest.fixture
def store(tmp_path: Path) -> LocalDirObjectStore:
    media = build_media(tmp_path / "media", renditions=(Rendition(RENDITIONS[0], 320, 180, 300),))
    objects = LocalDirObjectStore(tmp_path / "objects")
    upload_title(objects, "t1", media)
    return objects


def race(store: LocalDirObjectStore, fail_at: int | None) -> list[BaseException]:
    """Run B starts first and stalls past the published check; run A publishes; then B goes on."""
    keys, go, errors = InMemoryKeyProvider(generate=True), threading.Event(), list[BaseException]()

    def late() -> None:
        try:
            package_title(LateRun(store, go, fail_at), "t1", RENDITIONS, [], [], "cbcs", keys, package_id="p1")
        except BaseException as e:  # noqa: BLE001 - collected for the test to look at
            errors.append(e)

    b = threading.Thread(target=late)
    b.start()
    time.sleep(1.0)  # B is past its check and preparing
    package_title(store, "t1", RENDITIONS, [], [], "cbcs", keys, package_id="p1")
    published = {key: store.get(key) for key in (TRACK + "init.mp4", TRACK + "seg-00001.m4s")}
    go.set()
    b.join(60)
    for key, data in published.items():
        assert store.get(key) == data, f"{key} changed after it was published"
    return errors


def test_the_later_run_writes_the_same_bytes_over_a_published_package(store: LocalDirObjectStore) -> None:
    assert race(store, fail_at=None) == []


def test_a_failing_later_run_leaves_the_published_package_whole(store: LocalDirObjectStore) -> None:
    errors = race(store, fail_at=3)
    assert len(errors) == 1 and "injected failure" in str(errors[0])
    listed = {info.key for info in store.list("packages/t1/p1/")}
    package = store.get("packages/t1/p1/package.json")
    assert b'"package_id": "p1"' in package or b'"package_id":"p1"' in package
    assert {TRACK + "init.mp4", TRACK + "seg-00001.m4s", TRACK + "seg-00002.m4s"} <= listed
