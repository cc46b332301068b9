"""The embedded runtime's files hold what a server's access control would guard: password
hashes and wrapped content keys (state), viewers' events (log), studio masters in the clear
(objects). They are made readable by their owner only; a file an earlier version made
readable by everyone is narrowed when opened."""

from __future__ import annotations

import os
import stat
from contextlib import suppress
from pathlib import Path


def owner_only_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 if missing, else take group and other access away
    (SQLite gives its -wal and -shm files the database file's mode)."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        _narrow(path)


def owner_only_dir(path: Path) -> None:
    """``path`` and any missing parents made, ``path`` itself with mode 0700 (an existing
    folder is narrowed only if this process owns it)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    _narrow(path)


def _narrow(path: Path) -> None:
    with suppress(OSError):  # not ours, or a read-only mount: leave it as it is
        info = path.stat()
        if info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) & 0o077:
            path.chmod(stat.S_IMODE(info.st_mode) & 0o700)
