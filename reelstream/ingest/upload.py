"""Resumable uploads of large files into the ObjectStore, through the port's upload API.

The file goes up in fixed-size parts (``ObjectStore.begin_upload`` / ``upload_part`` /
``complete_upload``) and a journal (``<data_dir>/uploads/*.json``) keeps the upload id.
Run the same upload again after an interruption and the store is asked which parts it
holds (``uploaded_parts``); each is compared with the local part's MD5, so only parts the
store lacks or holds differently are sent again. Same code for S3 (a multipart upload)
and the local directory (parts under ``.meta/uploads``).

The SHA-256 of the whole file is computed first and stored with the object. On a master of
tens of GB that takes minutes, so it is reported as a phase of its own (``hashing``), and
``TransferMeter`` gives a rate and an ETA that count the transfer only.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reelstream.errors import ObjectStoreError
from reelstream.stores.ports import ObjectInfo, ObjectStore, UploadedPart, UploadNotFound

MiB = 1024 * 1024
PART_SIZE = 8 * MiB  # S3's minimum part is 5 MiB

UploadProgress = Callable[[int, int], None]  # (bytes done, total); also the hashing phase's
FaultHook = Callable[[int], None]  # called with the part number before each part is sent (tests inject faults)


@dataclass
class UploadReport:
    info: ObjectInfo
    parts: int
    parts_sent: int  # parts sent by this run; fewer than ``parts`` when it resumed
    bytes_sent: int


@dataclass
class TransferMeter:
    """Rate and ETA of an upload's transfer, for a progress display. The clock starts at the
    transfer's first report (``upload_resumable`` makes one, of 0 bytes, as the transfer
    begins), so the hashing before it (minutes for a large master) is not counted."""

    clock: Callable[[], float] = time.monotonic
    _start: tuple[float, int] | None = None  # (time, bytes done) of the first report

    def update(self, done: int, total: int) -> tuple[float, float]:
        """(bytes per second, seconds left) after ``done`` of ``total`` bytes; 0 until measurable."""
        now = self.clock()
        if self._start is None:
            self._start = (now, done)
        elapsed, moved = now - self._start[0], done - self._start[1]
        rate = moved / elapsed if elapsed > 0 else 0.0
        return rate, ((total - done) / rate if rate > 0 else 0.0)


@dataclass
class _Journal:
    path: Path
    key: str
    size: int
    mtime_ns: int
    part_size: int
    upload_id: str | None = None
    parts: dict[str, str] = field(default_factory=dict)  # part number -> MD5 hex

    @classmethod
    def open(cls, directory: Path, key: str, source: Path, part_size: int) -> _Journal:
        stat = source.stat()
        path = directory / (hashlib.sha256(key.encode()).hexdigest()[:32] + ".json")
        fresh = cls(path, key, stat.st_size, stat.st_mtime_ns, part_size)
        try:
            doc: dict[str, Any] = json.loads(path.read_text())
        except (OSError, ValueError):
            return fresh
        if (doc.get("key"), doc.get("size"), doc.get("mtime_ns"), doc.get("part_size")) != (
                key, stat.st_size, stat.st_mtime_ns, part_size):
            return fresh  # a different file: start over
        return cls(path, key, stat.st_size, stat.st_mtime_ns, part_size, doc.get("upload_id"), doc.get("parts", {}))

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"key": self.key, "size": self.size, "mtime_ns": self.mtime_ns,
                                   "part_size": self.part_size, "upload_id": self.upload_id, "parts": self.parts}))
        os.replace(tmp, self.path)

    def forget(self) -> None:
        self.path.unlink(missing_ok=True)


def _parts(source: Path, part_size: int) -> Iterator[tuple[int, bytes]]:
    with source.open("rb") as f:
        number = 1
        while part := f.read(part_size):
            yield number, part
            number += 1


def _sha256(source: Path, size: int, hashing: UploadProgress | None) -> str:
    sha, done = hashlib.sha256(), 0
    with source.open("rb") as f:
        while block := f.read(MiB * 8):
            sha.update(block)
            done += len(block)
            if hashing:
                hashing(done, size)
    return sha.hexdigest()


def upload_resumable(objects: ObjectStore, key: str, source: Path, journal_dir: Path, *,
                     part_size: int = PART_SIZE, content_type: str = "application/octet-stream",
                     progress: UploadProgress | None = None, hashing: UploadProgress | None = None,
                     fault: FaultHook | None = None) -> UploadReport:
    """Upload ``source`` to ``key``, resuming a previous interrupted run of the same upload.

    ``hashing`` is told the bytes hashed so far, ``progress`` the bytes transferred (parts
    the store already holds included)."""
    journal = _Journal.open(journal_dir, key, source, part_size)
    checksum = _sha256(source, journal.size, hashing)  # first: the checksum is declared when the upload begins
    if progress:
        progress(0, journal.size)  # the transfer begins
    if journal.size <= part_size:  # one part: a plain put, nothing to resume
        if fault:
            fault(1)
        info = objects.put(key, source, content_type=content_type, expected_sha256=checksum)
        if progress:
            progress(info.size, info.size)
        journal.forget()
        return UploadReport(info, 1, 1, info.size)
    held: dict[int, UploadedPart] = {}
    if journal.upload_id:
        try:
            held = objects.uploaded_parts(key, journal.upload_id)
        except UploadNotFound:
            journal.upload_id = None  # expired, aborted or completed: start a new one
    if not journal.upload_id:
        journal.upload_id = objects.begin_upload(key, sha256=checksum, content_type=content_type)
        journal.parts = {}
        journal.save()
    done = sent = sent_bytes = 0
    parts = []
    for number, data in _parts(source, journal.part_size):
        part = held.get(number)
        # A part the store holds is compared by MD5; a new one is not hashed here (the store
        # computes its ETag anyway: hashing it twice cost 0.6 s CPU per 470 MB master).
        if part is None or part.size != len(data) or part.md5 != hashlib.md5(data).hexdigest():
            if fault:
                fault(number)
            part = objects.upload_part(key, journal.upload_id, number, data)
            journal.parts[str(number)] = part.md5
            journal.save()
            sent, sent_bytes = sent + 1, sent_bytes + len(data)
        parts.append(part)
        done += len(data)
        if progress:
            progress(done, journal.size)
    info = objects.complete_upload(key, journal.upload_id, parts)
    if info.sha256 != checksum:
        raise ObjectStoreError(f"resumable upload of {key!r}: stored with SHA-256 {info.sha256}, the file has "
                               f"{checksum} (it changed during the upload?); upload it again")
    journal.forget()
    return UploadReport(info, len(parts), sent, sent_bytes)
