"""What a resumable upload reports while it runs: the hashing first, as a phase of its own,
then the transfer from 0 bytes (a real local store, a real file)."""

from __future__ import annotations

import os
from pathlib import Path

from reelstream.ingest.upload import upload_resumable
from reelstream.stores.localdir import LocalDirObjectStore

MiB = 1024 * 1024


def test_the_hashing_is_reported_before_any_part_is_sent(tmp_path: Path) -> None:
    source = tmp_path / "master.bin"
    source.write_bytes(os.urandom(20 * MiB))
    seen: list[tuple[str, int]] = []
    upload_resumable(LocalDirObjectStore(tmp_path / "objects"), "titles/x/master/master.bin", source,
                     tmp_path / "journal", part_size=5 * MiB,
                     hashing=lambda done, total: seen.append(("hashed", done)),
                     progress=lambda done, total: seen.append(("sent", done)),
                     fault=lambda part: seen.append(("part", part)))
    phases = [phase for phase, _ in seen]
    hashed = [done for phase, done in seen if phase == "hashed"]
    # Reported as it goes (every 8 MiB), not once at the end: a 50-GB master takes minutes.
    assert hashed == [8 * MiB, 16 * MiB, 20 * MiB]
    assert phases[:4] == ["hashed", "hashed", "hashed", "sent"] and seen[3] == ("sent", 0)
    assert [p for p in phases if p != "hashed"][:2] == ["sent", "part"]  # the transfer starts from 0 bytes
    assert seen[-1] == ("sent", 20 * MiB)
