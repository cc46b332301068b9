"""Resumable uploads of large files into the ObjectStore.

The file goes up in fixed-size parts and a journal (``<data_dir>/uploads/*.json``)
records which parts are done. Run the same upload again after an interruption and only
the missing parts are sent:

- on S3, parts go straight into an S3 multipart upload; on resume the server's list of
  parts (ListParts) is compared with each local part's MD5 (the part ETag), so only
  parts the server lacks or holds differently are sent again;
- on any other store, parts are staged next to the journal and the object is written
  with one ``put`` once every part is there.

The SHA-256 of the whole file is computed while reading it and stored with the object.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reelstream.errors import ObjectStoreError
from reelstream.stores.ports import ObjectInfo, ObjectStore

MiB = 1024 * 1024
PART_SIZE = 8 * MiB  # S3's minimum part is 5 MiB

UploadProgress = Callable[[int, int], None]  # (bytes done, total)
FaultHook = Callable[[int], None]  # called with the part number before each part is sent (tests inject faults)


@dataclass
class UploadReport:
    info: ObjectInfo
    parts: int
    parts_sent: int  # parts sent by this run; fewer than ``parts`` when it resumed
    bytes_sent: int


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


def upload_resumable(objects: ObjectStore, key: str, source: Path, journal_dir: Path, *,
                     part_size: int = PART_SIZE, content_type: str = "application/octet-stream",
                     progress: UploadProgress | None = None, fault: FaultHook | None = None) -> UploadReport:
    """Upload ``source`` to ``key``, resuming a previous interrupted run of the same upload."""
    journal = _Journal.open(journal_dir, key, source, part_size)
    client = _s3_client(objects)
    if client is not None and journal.size > part_size:
        return _upload_s3(objects, client, journal, source, content_type, progress, fault)
    return _upload_staged(objects, journal, source, content_type, progress, fault)


def _s3_client(objects: ObjectStore) -> tuple[Any, str] | None:
    try:
        from reelstream.stores.s3 import S3ObjectStore
    except ImportError:  # boto3 absent: no S3 store can exist either
        return None
    if isinstance(objects, S3ObjectStore):
        # The port has no resumable upload; the adapter's boto3 client and bucket are reused
        # rather than configured twice. (Asked for as a port method in the report.)
        return objects._s3, objects._bucket
    return None


def _upload_staged(objects: ObjectStore, journal: _Journal, source: Path, content_type: str,
                   progress: UploadProgress | None, fault: FaultHook | None) -> UploadReport:
    staging = journal.path.with_suffix(".parts")
    staging.mkdir(parents=True, exist_ok=True)
    done = sent = sent_bytes = total_parts = 0
    digest = hashlib.sha256()
    for number, part in _parts(source, journal.part_size):
        total_parts = number
        digest.update(part)
        md5 = hashlib.md5(part).hexdigest()
        staged = staging / f"{number:06d}"
        if journal.parts.get(str(number)) != md5 or not staged.is_file():
            if fault:
                fault(number)
            tmp = staged.with_suffix(".tmp")
            tmp.write_bytes(part)
            os.replace(tmp, staged)
            journal.parts[str(number)] = md5
            journal.save()
            sent, sent_bytes = sent + 1, sent_bytes + len(part)
        done += len(part)
        if progress:
            progress(done, journal.size)
    info = objects.put(journal.key, _Concatenated(staging, total_parts), content_type=content_type,
                       expected_sha256=digest.hexdigest())
    for staged in staging.iterdir():
        staged.unlink()
    staging.rmdir()
    journal.forget()
    return UploadReport(info, total_parts, sent, sent_bytes)


class _Concatenated:
    """The staged parts read back in order as one stream (what ``ObjectStore.put`` takes)."""

    def __init__(self, staging: Path, parts: int) -> None:
        self._files = [staging / f"{n:06d}" for n in range(1, parts + 1)]
        self._current: Any = None

    def read(self, size: int = -1) -> bytes:
        while self._files or self._current:
            if self._current is None:
                self._current = self._files.pop(0).open("rb")
            data: bytes = self._current.read(size)
            if data:
                return data
            self._current.close()
            self._current = None
        return b""

    def seekable(self) -> bool:
        return False


def _upload_s3(objects: ObjectStore, client_bucket: tuple[Any, str], journal: _Journal, source: Path,
               content_type: str, progress: UploadProgress | None, fault: FaultHook | None) -> UploadReport:
    from botocore.exceptions import BotoCoreError, ClientError

    s3, bucket = client_bucket
    sha = hashlib.sha256()
    with source.open("rb") as f:  # hashed first so the checksum goes up with the multipart upload
        while block := f.read(MiB * 8):
            sha.update(block)
    checksum = sha.hexdigest()
    try:
        server: dict[int, str] = {}
        if journal.upload_id:
            try:
                pages = s3.get_paginator("list_parts").paginate(Bucket=bucket, Key=journal.key,
                                                                UploadId=journal.upload_id)
                server = {p["PartNumber"]: p["ETag"].strip('"') for page in pages for p in page.get("Parts", [])}
            except ClientError:
                journal.upload_id = None  # expired or aborted: start a new one
        if not journal.upload_id:
            journal.upload_id = s3.create_multipart_upload(
                Bucket=bucket, Key=journal.key, ContentType=content_type, Metadata={"sha256": checksum})["UploadId"]
            journal.parts = {}
            journal.save()
        done = sent = sent_bytes = 0
        etags = []
        for number, part in _parts(source, journal.part_size):
            md5 = hashlib.md5(part).hexdigest()
            if server.get(number) != md5:
                if fault:
                    fault(number)
                s3.upload_part(Bucket=bucket, Key=journal.key, UploadId=journal.upload_id, PartNumber=number,
                               Body=part)
                sent, sent_bytes = sent + 1, sent_bytes + len(part)
            etags.append({"PartNumber": number, "ETag": f'"{md5}"'})
            done += len(part)
            if progress:
                progress(done, journal.size)
        s3.complete_multipart_upload(Bucket=bucket, Key=journal.key, UploadId=journal.upload_id,
                                     MultipartUpload={"Parts": etags})
    except (ClientError, BotoCoreError) as e:
        raise ObjectStoreError(f"resumable upload of {journal.key!r}: {e}") from e
    journal.forget()
    return UploadReport(objects.head(journal.key), len(etags), sent, sent_bytes)
