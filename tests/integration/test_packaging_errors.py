"""Bad input: a specific error naming the file and the box, and nothing published.

A fault injected at the object store (a failing put) shows the clean-up path too.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from reelstream.errors import ObjectStoreError
from reelstream.media.encrypt.keys import InMemoryKeyProvider, MissingKey
from reelstream.media.package.boxes import iter_headers
from reelstream.media.package.errors import CorruptMedia, MissingInput, UnsupportedCodec
from reelstream.media.package.packager import package_title
from reelstream.stores.localdir import LocalDirObjectStore
from tests.support.media_fixtures import Rendition, build_media, encode_rendition, upload_title

R = ["h264-180p-300k"]
CHUNK = "titles/t1/renditions/h264-180p-300k/chunks/000001.mp4"


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_media(tmp_path_factory.mktemp("media"), renditions=(Rendition(R[0], 320, 180, 300),))


@pytest.fixture
def store(tmp_path: Path, media: Path) -> LocalDirObjectStore:
    s = LocalDirObjectStore(tmp_path / "objects")
    upload_title(s, "t1", media)
    return s


def _package(store, scheme="cenc", provider=None, **kw):
    return package_title(store, "t1", R, ["audio-en"], ["text-fr"], scheme,
                         provider or InMemoryKeyProvider(generate=True), package_id="p1", **kw)


def _published(store) -> list[str]:
    return [i.key for i in store.list("packages/")]


def test_truncated_chunk(store) -> None:
    data = store.get(CHUNK)
    last = [kind for kind, *_ in iter_headers(data, 0, len(data), CHUNK)][-1].decode()
    store.put(CHUNK, data[:len(data) - 700])
    with pytest.raises(CorruptMedia) as e:
        _package(store)
    assert e.value.file == CHUNK and e.value.box == last  # the box the cut went through
    assert CHUNK in str(e.value) and "truncated" in str(e.value)
    assert _published(store) == []


def test_corrupt_box_in_chunk(store) -> None:
    data = bytearray(store.get(CHUNK))
    at = data.find(b"stsz")
    data[at - 4:at] = (0xFFFFFF).to_bytes(4, "big")  # a size far past its parent's end
    store.put(CHUNK, bytes(data))
    with pytest.raises(CorruptMedia) as e:
        _package(store)
    assert e.value.file == CHUNK and e.value.box == "moov/trak/mdia/minf/stbl/stsz"
    assert _published(store) == []


def test_unknown_codec(store, tmp_path: Path) -> None:
    chunks = encode_rendition(tmp_path / "mpeg4", Rendition("x", 320, 180, 300), 2, codec="mpeg4")
    store.put(CHUNK, chunks[0])
    with pytest.raises(UnsupportedCodec) as e:
        _package(store)
    assert e.value.file == CHUNK and e.value.box.endswith("stsd/mp4v") and e.value.codec == "mp4v"
    assert _published(store) == []


def test_missing_key(store) -> None:
    with pytest.raises(MissingKey) as e:
        _package(store, provider=InMemoryKeyProvider({}))
    assert e.value.title_id == "t1" and e.value.key_class in ("SD", "AUDIO")
    assert _published(store) == []


def test_missing_rendition(store) -> None:
    with pytest.raises(MissingInput):
        package_title(store, "t1", ["h264-9999p"], [], [], "cenc", InMemoryKeyProvider(generate=True))
    assert _published(store) == []


class FailingStore(LocalDirObjectStore):
    """Fails the n-th write under packages/ (a full disk, a dropped S3 connection)."""

    def __init__(self, root: Path, fail_at: int) -> None:
        super().__init__(root)
        self.writes, self.fail_at = 0, fail_at

    def put(self, key, source, **kw):  # type: ignore[no-untyped-def]
        if key.startswith("packages/"):
            self.writes += 1
            if self.writes == self.fail_at:
                raise ObjectStoreError(f"injected failure writing {key}")
        return super().put(key, source, **kw)


def test_failed_write_leaves_nothing(tmp_path: Path, media: Path) -> None:
    store = FailingStore(tmp_path / "objects", fail_at=5)
    upload_title(store, "t1", media)
    with pytest.raises(ObjectStoreError):
        _package(store)
    assert _published(store) == []
    store.fail_at = -1
    package = _package(store)  # the same package id publishes cleanly afterwards
    assert store.exists(package.storage_prefix + "package.json")


def test_published_prefix_is_not_overwritten(store) -> None:
    _package(store)
    before = _published(store)
    with pytest.raises(Exception, match="already published"):
        _package(store)
    assert _published(store) == before
