"""The ObjectStore contract, run against a local directory and S3 with the same assertions."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from reelstream.errors import ChecksumMismatch, ObjectNotFound, ObjectStoreError

if TYPE_CHECKING:  # tests/contracts is not a package; the fixture itself comes from conftest
    from tests.contracts.conftest import ObjectHarness

MiB = 1024 * 1024
BIG = 20 * MiB + 12345  # over the S3 fixture's 5 MiB threshold: five parts, the last one short


class OneWayStream(io.RawIOBase):
    """A stream that cannot be rewound or measured, like an HTTP request body."""

    def __init__(self, data: bytes, chunk: int = 300_000) -> None:
        self._data, self._pos, self._chunk = data, 0, chunk

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
        n = min(len(buffer), self._chunk, len(self._data) - self._pos)
        buffer[:n] = self._data[self._pos : self._pos + n]
        self._pos += n
        return n


class Progress:
    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def __call__(self, done: int, total: int) -> None:
        self.calls.append((done, total))

    def check_reached(self, size: int) -> None:
        done = [d for d, _ in self.calls]
        assert done == sorted(done), "progress went backwards"
        assert self.calls[-1] == (size, size)


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("big") / "master.bin"
    path.write_bytes(os.urandom(BIG))
    return path


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_put_and_get_bytes(objects: ObjectHarness) -> None:
    key = objects.prefix + "a/small.txt"

    info = objects.store.put(key, b"hello, reel")

    assert (info.key, info.size, info.sha256) == (key, 11, sha(b"hello, reel"))
    assert objects.store.get(key) == b"hello, reel"
    assert objects.store.exists(key)


def test_empty_object(objects: ObjectHarness) -> None:
    key = objects.prefix + "empty"
    assert objects.store.put(key, b"").size == 0
    assert objects.store.get(key) == b""
    assert objects.store.head(key).sha256 == sha(b"")


def test_put_overwrites(objects: ObjectHarness) -> None:
    key = objects.prefix + "v.json"
    objects.store.put(key, b"one", metadata={"version": "1"})
    objects.store.put(key, b"two")
    assert objects.store.get(key) == b"two"
    assert objects.store.head(key).metadata == {}


def test_large_file_goes_up_in_parts_and_downloads_verified(
    objects: ObjectHarness,
    big_file: Path,
    tmp_path: Path,
) -> None:
    key = objects.prefix + "masters/t1/source.mp4"
    progress = Progress()
    data = big_file.read_bytes()

    info = objects.store.put(key, big_file, content_type="video/mp4", progress=progress)
    downloaded = objects.store.download(key, tmp_path / "out" / "copy.mp4")

    assert info.size == BIG and info.sha256 == sha(data)
    progress.check_reached(BIG)
    assert len(progress.calls) >= 3
    assert (tmp_path / "out" / "copy.mp4").read_bytes() == data
    assert downloaded.sha256 == sha(data) and downloaded.size == BIG
    assert objects.store.get(key) == data


def test_large_one_way_stream_gets_its_checksum_recorded(
    objects: ObjectHarness, big_file: Path
) -> None:
    key = objects.prefix + "uploads/stream.bin"
    data = big_file.read_bytes()
    progress = Progress()

    info = objects.store.put(
        key, OneWayStream(data), metadata={"origin": "upload"}, progress=progress
    )

    assert info.sha256 == sha(data)
    head = objects.store.head(key)
    assert (head.size, head.sha256, head.metadata) == (BIG, sha(data), {"origin": "upload"})
    assert objects.store.get(key) == data
    progress.check_reached(BIG)


def test_small_streams_seekable_or_not(objects: ObjectHarness) -> None:
    objects.store.put(objects.prefix + "s1", io.BytesIO(b"seekable"))
    objects.store.put(objects.prefix + "s2", OneWayStream(b"one way", chunk=2))
    assert objects.store.get(objects.prefix + "s1") == b"seekable"
    assert objects.store.get(objects.prefix + "s2") == b"one way"
    assert objects.store.head(objects.prefix + "s2").sha256 == sha(b"one way")


def test_progress_reaches_the_total_for_a_small_put(objects: ObjectHarness) -> None:
    progress = Progress()
    objects.store.put(objects.prefix + "p", b"x" * 1000, progress=progress)
    progress.check_reached(1000)


def test_get_range(objects: ObjectHarness) -> None:
    key = objects.prefix + "range.bin"
    data = bytes(range(256)) * 4
    objects.store.put(key, data)

    assert objects.store.get_range(key, 0, 0) == data[:1]
    assert objects.store.get_range(key, 10, 19) == data[10:20]
    assert objects.store.get_range(key, 1000, 5000) == data[1000:]  # the end is clamped
    with pytest.raises(ObjectStoreError):
        objects.store.get_range(key, len(data), len(data) + 10)
    with pytest.raises(ObjectStoreError):
        objects.store.get_range(key, 5, 4)
    with pytest.raises(ObjectNotFound):
        objects.store.get_range(objects.prefix + "missing", 0, 1)


def test_head_describes_the_object(objects: ObjectHarness) -> None:
    key = objects.prefix + "seg/init.mp4"
    objects.store.put(
        key,
        b"\x00\x00\x00\x18ftyp",
        content_type="video/mp4",
        metadata={"rendition": "720p", "kid": "abc-1"},
    )

    info = objects.store.head(key)

    assert (info.key, info.size, info.sha256) == (key, 8, sha(b"\x00\x00\x00\x18ftyp"))
    assert info.content_type == "video/mp4"
    assert info.metadata == {"rendition": "720p", "kid": "abc-1"}


def test_list_with_prefix_in_key_order(objects: ObjectHarness) -> None:
    p = objects.prefix
    keys = [
        p + "t/a/x",
        p + "t/a-x",
        p + "t/a0",
        p + "t/B",
        p + "t/é",
        p + "t/b/c/d",
        p + "u/other",
    ]
    for key in reversed(keys):
        objects.store.put(key, key.encode())

    listed = list(objects.store.list(p + "t/"))

    # UTF-8 byte order: "B" < "a-x" ('-' 0x2d) < "a/x" ('/' 0x2f) < "a0" < "b/..." < "é".
    assert [i.key for i in listed] == [
        p + "t/B",
        p + "t/a-x",
        p + "t/a/x",
        p + "t/a0",
        p + "t/b/c/d",
        p + "t/é",
    ]
    assert [i.size for i in listed] == [len(i.key.encode()) for i in listed]
    assert all(i.sha256 == sha(i.key.encode()) for i in listed)
    assert [i.key for i in objects.store.list(p + "t/a")] == [p + "t/a-x", p + "t/a/x", p + "t/a0"]
    assert list(objects.store.list(p + "nothing/")) == []


def test_delete(objects: ObjectHarness) -> None:
    key = objects.prefix + "d/gone.bin"
    objects.store.put(key, b"bye")

    objects.store.delete(key)
    objects.store.delete(key)  # already gone: not an error
    objects.store.delete(objects.prefix + "never/was")

    assert not objects.store.exists(key)
    with pytest.raises(ObjectNotFound):
        objects.store.get(key)
    assert list(objects.store.list(objects.prefix + "d/")) == []


def test_missing_key_is_object_not_found(objects: ObjectHarness, tmp_path: Path) -> None:
    key = objects.prefix + "nope"
    with pytest.raises(ObjectNotFound):
        objects.store.get(key)
    with pytest.raises(ObjectNotFound):
        objects.store.head(key)
    with pytest.raises(ObjectNotFound):
        objects.store.download(key, tmp_path / "x")
    with pytest.raises(ObjectNotFound):
        objects.store.local_copy(key, tmp_path / "y")
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
    assert not objects.store.exists(key)


def test_local_copy_keeps_its_bytes_when_the_key_is_replaced_or_deleted(
    objects: ObjectHarness, big_file: Path, tmp_path: Path
) -> None:
    key = objects.prefix + "masters/t2/source.mp4"
    data = big_file.read_bytes()
    objects.store.put(key, big_file, content_type="video/mp4")

    info = objects.store.local_copy(key, tmp_path / "scratch" / "master.mp4")
    objects.store.put(key, b"a different master")  # what a re-ingest under the same key does
    replaced = objects.store.get(key)
    objects.store.delete(key)

    assert info.sha256 == sha(data) and info.size == BIG
    assert replaced == b"a different master"
    assert (tmp_path / "scratch" / "master.mp4").read_bytes() == data


@pytest.mark.parametrize("size", [100, BIG], ids=["single", "multipart"])
@pytest.mark.parametrize("kind", ["bytes", "path", "one-way stream"])
def test_expected_sha256_mismatch_stores_nothing(
    objects: ObjectHarness,
    big_file: Path,
    tmp_path: Path,
    kind: str,
    size: int,
) -> None:
    key = objects.prefix + "bad/upload.bin"
    data = big_file.read_bytes()[:size]
    source = {"bytes": lambda: data, "one-way stream": lambda: OneWayStream(data)}.get(kind)
    if source is None:
        (tmp_path / "src").write_bytes(data)
    wrong = sha(b"something else")

    with pytest.raises(ChecksumMismatch):
        objects.store.put(key, source() if source else tmp_path / "src", expected_sha256=wrong)

    assert not objects.store.exists(key)
    assert objects.leftovers() == []


def test_expected_sha256_match_stores(objects: ObjectHarness) -> None:
    key = objects.prefix + "good.bin"
    objects.store.put(key, b"payload", expected_sha256=sha(b"payload").upper())
    assert objects.store.get(key) == b"payload"


def test_corrupted_object_fails_verification(objects: ObjectHarness, tmp_path: Path) -> None:
    key = objects.prefix + "seg/0001.m4s"
    objects.store.put(key, b"original segment bytes")

    objects.corrupt(key, b"original segment bytez")

    with pytest.raises(ChecksumMismatch):
        objects.store.get(key)
    with pytest.raises(ChecksumMismatch):
        objects.store.download(key, tmp_path / "dl" / "seg.m4s")
    assert list((tmp_path / "dl").iterdir()) == []  # neither the file nor a temp file beside it


@pytest.mark.parametrize(
    "key",
    [
        "",
        "/abs",
        "a//b",
        "a/",
        "a/../b",
        "..",
        "./a",
        "a/./b",
        "a\\b",
        "a\x00b",
        ".meta/x",
        "k" * 1025,
    ],
    ids=repr,
)
def test_bad_keys_are_refused(objects: ObjectHarness, key: str) -> None:
    for call in (
        lambda: objects.store.put(key, b"x"),
        lambda: objects.store.get(key),
        lambda: objects.store.head(key),
        lambda: objects.store.delete(key),
    ):
        with pytest.raises(ObjectStoreError, match="invalid object key") as caught:
            call()
        assert not isinstance(caught.value, ObjectNotFound)


@pytest.mark.parametrize(
    "metadata", [{"Upper": "x"}, {"sha256": "x"}, {"k": "é"}, {"k": "a\nb"}, {"a_b": "x"}]
)
def test_bad_metadata_is_refused(objects: ObjectHarness, metadata: dict[str, str]) -> None:
    key = objects.prefix + "meta"
    with pytest.raises(ObjectStoreError, match="metadata"):
        objects.store.put(key, b"x", metadata=metadata)
    assert not objects.store.exists(key)


# --------------------------------------------------------------------------- resumable uploads

PART = 5 * MiB  # S3's smallest part but the last


def test_an_interrupted_upload_resumes_with_the_parts_the_store_holds(objects: ObjectHarness) -> None:
    from reelstream.stores.ports import UploadedPart, UploadNotFound

    store, key = objects.store, objects.prefix + "upload/master.mov"
    data = os.urandom(2 * PART + 12345)
    chunks = [data[i:i + PART] for i in range(0, len(data), PART)]
    upload = store.begin_upload(key, sha256=sha(data), content_type="video/quicktime", metadata={"title": "t-1"})
    first = store.upload_part(key, upload, 1, chunks[0])
    assert first == UploadedPart(1, PART, hashlib.md5(chunks[0]).hexdigest())
    # The client died here. A new run knows only the upload id (from its journal) and asks.
    held = store.uploaded_parts(key, upload)
    assert held == {1: first} and not store.exists(key)
    store.upload_part(key, upload, 3, chunks[2])  # out of order, as parallel senders do
    store.upload_part(key, upload, 2, b"x" * PART)  # damaged on the client's side: sent again below
    assert store.upload_part(key, upload, 2, chunks[1]).md5 == hashlib.md5(chunks[1]).hexdigest()
    held = store.uploaded_parts(key, upload)
    assert sorted(held) == [1, 2, 3] and [held[n].size for n in (1, 2, 3)] == [PART, PART, 12345]
    info = store.complete_upload(key, upload, [held[1], held[2], held[3]])
    assert (info.size, info.sha256, info.content_type) == (len(data), sha(data), "video/quicktime")
    assert dict(info.metadata) == {"title": "t-1"} and store.get(key) == data
    with pytest.raises(UploadNotFound):
        store.uploaded_parts(key, upload)  # completed: gone
    assert objects.leftovers() == []


def test_an_aborted_upload_leaves_nothing_and_unknown_ids_are_refused(objects: ObjectHarness) -> None:
    from reelstream.stores.ports import UploadNotFound

    store, key = objects.store, objects.prefix + "upload/aborted.mov"
    upload = store.begin_upload(key, sha256=sha(b"whatever"))
    store.upload_part(key, upload, 1, os.urandom(1000))
    store.abort_upload(key, upload)
    store.abort_upload(key, upload)  # twice: not an error
    with pytest.raises(UploadNotFound):
        store.uploaded_parts(key, upload)
    with pytest.raises(UploadNotFound):
        store.upload_part(key, upload, 2, b"late")
    assert not store.exists(key) and objects.leftovers() == []
    assert [o.key for o in store.list(objects.prefix)] == []
