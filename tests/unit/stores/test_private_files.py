"""The embedded runtime's files (password hashes and wrapped keys in the state, viewers'
events in the log, masters in the objects) are their owner's only; files an earlier version
made readable by everyone are narrowed when opened."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from reelstream.config import Settings
from reelstream.runtime import Runtime
from reelstream.stores.embedded_log import EmbeddedLog
from reelstream.stores.sqlite_state import SqliteStateStore


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_embedded_runtime_keeps_its_files_to_its_owner(tmp_path: Path) -> None:
    old = os.umask(0o022)  # a usual umask: files 0644, folders 0755
    try:
        runtime = Runtime(Settings(data_dir=tmp_path / "reel"))
        runtime.state.ensure_views([])
        runtime.objects.put("titles/t1/master/film.mp4", b"the studio's picture", content_type="video/mp4")
        runtime.log.end_offsets("reel.catalog")
        runtime.close()
    finally:
        os.umask(old)
    data = tmp_path / "reel"
    databases = [p for p in data.rglob("*.db*") if p.is_file()]
    assert {p.name for p in databases} >= {"state.db", "log.db"}
    assert {p.name: mode(p) for p in databases} == {p.name: 0o600 for p in databases}
    assert mode(data / "objects") == 0o700  # the masters under it are out of other users' reach


def test_files_an_earlier_version_left_world_readable_are_narrowed(tmp_path: Path) -> None:
    for name in ("state.db", "log.db"):
        (tmp_path / name).touch(mode=0o644)
        (tmp_path / name).chmod(0o644)
    SqliteStateStore(tmp_path / "state.db").close()
    EmbeddedLog(tmp_path / "log.db").close()
    assert mode(tmp_path / "state.db") == mode(tmp_path / "log.db") == 0o600
