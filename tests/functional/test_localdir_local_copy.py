"""The local store hands a worker the master by hard link: no copy, no re-read; and a
download where a link cannot be made."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from reelstream.stores.localdir import LocalDirObjectStore


def test_local_copy_is_a_hard_link_to_the_stored_bytes(tmp_path: Path) -> None:
    store = LocalDirObjectStore(tmp_path / "origin")
    store.put("masters/t1/source.mp4", b"mezzanine" * 1000)

    store.local_copy("masters/t1/source.mp4", tmp_path / "scratch" / "m.mp4")

    stored = os.stat(tmp_path / "origin" / "masters" / "t1" / "source.mp4")
    linked = os.stat(tmp_path / "scratch" / "m.mp4")
    assert (linked.st_ino, linked.st_dev) == (stored.st_ino, stored.st_dev)
    assert stored.st_nlink == 2


def test_local_copy_downloads_where_no_link_can_be_made(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = LocalDirObjectStore(tmp_path / "origin")
    store.put("masters/t1/source.mp4", b"mezzanine" * 1000)

    def other_file_system(src: object, dst: object) -> None:  # a scratch disk apart from the store
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", other_file_system)
    info = store.local_copy("masters/t1/source.mp4", tmp_path / "scratch" / "m.mp4")

    assert (tmp_path / "scratch" / "m.mp4").read_bytes() == b"mezzanine" * 1000
    assert os.stat(tmp_path / "scratch" / "m.mp4").st_nlink == 1
    assert info.size == 9000
