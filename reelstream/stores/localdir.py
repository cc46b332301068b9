"""ObjectStore in a local directory: the embedded runtime's origin storage.

An object ``a/b.mp4`` is the plain file ``<root>/a/b.mp4`` (so nginx can serve the
directory as is); its SHA-256, content type and metadata sit in a JSON sidecar at the
same path under ``<root>/.meta/objects/``, a mirror tree, so two keys collide there only
where their files would collide anyway. Writes go to ``<root>/.meta/tmp/`` first, are
fsynced and renamed into place, so a reader never sees half an object.

The data file and its sidecar are two renames, so every step that replaces or removes
them, and every read that pairs them, holds an ``fcntl.flock`` on the key's lock file
under ``<root>/.meta/locks/`` (exclusive to write, shared to read). Writers of one key,
threads or processes, then publish one after the other: the last one wins whole, and no
reader pairs one writer's bytes with another's checksum.

The key and metadata rules (``check_key``, ``check_metadata``) live here and the S3
adapter imports them: a key valid on one store is valid on the other.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import IO, Any, BinaryIO

from reelstream.errors import ChecksumMismatch, ObjectNotFound, ObjectStoreError
from reelstream.stores.ports import (
    ObjectInfo,
    ObjectStore,
    Progress,
    Source,
    UploadedPart,
    UploadNotFound,
)
from reelstream.stores.private import owner_only_dir

CHUNK = 1024 * 1024
META_DIR = ".meta"  # reserved first key segment: the sidecars and temp files live there
SHA256 = "sha256"  # the metadata name both stores keep the checksum under
_METADATA_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\\]")
LOCK_STRIPES = 256  # lock files are never deleted (that would race), so keys share a fixed set


# --------------------------------------------------------------------------- shared rules


def check_key(key: str) -> str:
    """Return ``key`` if it is a portable object key, else raise ObjectStoreError."""
    why = None
    if not isinstance(key, str) or not key:
        why = "it is empty"
    elif key.startswith("/"):
        why = "it starts with '/'"
    elif _CONTROL.search(key):
        why = "it contains a backslash or a control character"
    elif len(key.encode("utf-8")) > 1024:
        why = "it is longer than 1024 bytes (S3's limit)"
    elif any(seg in ("", ".", "..") for seg in key.split("/")):
        why = "it has an empty, '.' or '..' segment"
    elif key.split("/", 1)[0] == META_DIR:
        why = f"'{META_DIR}/' is reserved for the local store's metadata"
    if why:
        raise ObjectStoreError(
            f"invalid object key {key!r}: {why}; "
            "use '/'-separated names like 'masters/v1/source.mp4'"
        )
    return key


def check_metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    """User metadata both stores can hold: S3 lowercases names and sends values as ASCII headers."""
    out: dict[str, str] = {}
    for name, value in (metadata or {}).items():
        if not isinstance(name, str) or not _METADATA_NAME.match(name) or name == SHA256:
            raise ObjectStoreError(
                f"invalid metadata name {name!r}: use lowercase letters, digits and '-' "
                f"('{SHA256}' is reserved for the checksum)"
            )
        if not isinstance(value, str) or not value.isascii() or _CONTROL.search(value):
            raise ObjectStoreError(f"metadata {name!r}: the value must be printable ASCII text")
        out[name] = value
    return out


def check_range(start: int, end: int) -> None:
    if start < 0 or end < start:
        raise ObjectStoreError(f"invalid byte range {start}-{end}: need 0 <= start <= end")


@contextmanager
def opened(source: Source) -> Iterator[tuple[BinaryIO, int | None]]:
    """The source as a readable stream and its remaining size (None when it cannot be known)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        yield io.BytesIO(source), len(source)
    elif isinstance(source, Path):
        try:
            f = source.open("rb")
        except OSError as e:
            raise ObjectStoreError(f"cannot read {source}: {e}") from e
        with f:
            yield f, os.fstat(f.fileno()).st_size
    else:
        size = None
        try:
            if source.seekable():
                here = source.tell()
                size = source.seek(0, io.SEEK_END) - here
                source.seek(here)
        except (OSError, ValueError):
            size = None
        yield source, size


def report(progress: Progress | None, done: int, total: int | None) -> None:
    """Call ``progress``; ``total`` is -1 while unknown (a stream) and exact on the last call."""
    if progress is not None:
        progress(done, -1 if total is None else total)


def verify(key: str, stored: str | None, actual: str) -> None:
    if stored is not None and stored != actual:
        raise ChecksumMismatch(
            f"object {key!r} is corrupt: its SHA-256 is {actual}, "
            f"{stored} was recorded when it was stored"
        )


# --------------------------------------------------------------------------- adapter


class LocalDirObjectStore(ObjectStore):
    """Objects as files under ``root``; sidecar metadata under ``root/.meta``."""

    def __init__(self, root: Path) -> None:
        self._root = Path(root).resolve()
        self._meta = self._root / META_DIR / "objects"
        self._tmp = self._root / META_DIR / "tmp"
        self._locks = self._root / META_DIR / "locks"
        try:
            owner_only_dir(self._root)
            self._tmp.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ObjectStoreError(
                f"cannot create the object store directory {self._root}: {e}"
            ) from e
        with suppress(OSError):  # a read-only store made before the locks stays readable
            self._locks.mkdir(exist_ok=True)

    def _paths(self, key: str) -> tuple[Path, Path]:
        check_key(key)
        return self._root / key, self._meta / key

    @contextmanager
    def _locked(self, name: str, *, shared: bool = False) -> Iterator[None]:
        """Hold ``name``'s lock: exclusive to change what it names, shared to read it.

        flock, not a threading lock, so other processes' stores on the same root take
        part; each call opens the file anew, so threads of one process exclude each other
        too. ``name`` hashes to one of LOCK_STRIPES files: unrelated keys sharing a stripe
        only wait, and no code path holds two locks, so none can deadlock.
        """
        digest = hashlib.sha256(name.encode("utf-8")).digest()
        path = self._locks / f"{int.from_bytes(digest[:4], 'big') % LOCK_STRIPES:03d}.lock"
        try:
            # Read-only is enough for flock, and lets a reader lock a file another user made.
            fd: int | None = os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)
        except OSError as e:
            if not shared:
                raise ObjectStoreError(
                    f"local object store {self._root}: cannot open the lock file {path}: {e}"
                ) from e
            fd = None  # a read-only store: nobody can write it, so there is nothing to wait for
        if fd is None:
            yield
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the last descriptor releases the lock

    # -- writes

    def put(
        self,
        key: str,
        source: Source,
        *,
        content_type: str = "application/octet-stream",
        metadata: Mapping[str, str] | None = None,
        expected_sha256: str | None = None,
        progress: Progress | None = None,
    ) -> ObjectInfo:
        data_path, meta_path = self._paths(key)
        user = check_metadata(metadata)
        with opened(source) as (stream, total), self._temp() as (tmp, out):
            digest, done = hashlib.sha256(), 0
            report(progress, 0, total)
            while chunk := stream.read(CHUNK):
                out.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                report(progress, done, total)
            if done != total:
                report(progress, done, done)
            sha = digest.hexdigest()
            if expected_sha256 is not None and expected_sha256.lower() != sha:
                raise ChecksumMismatch(
                    f"object {key!r} not stored: its SHA-256 is {sha}, expected {expected_sha256}"
                )
            info = ObjectInfo(
                key=key, size=done, sha256=sha, content_type=content_type, etag=sha, metadata=user
            )
            sidecar = json.dumps({"sha256": sha, "content_type": content_type, "metadata": user})
            with self._translated(f"storing {key!r}"), self._temp() as (meta_tmp, meta_out):
                meta_out.write(sidecar.encode())
                for f in (out, meta_out):
                    f.flush()
                    os.fsync(f.fileno())
                # Only the two renames are serialised; the copy and hashing above run in parallel.
                with self._locked(key):
                    self._place(tmp, data_path)
                    # The sidecar follows the data: a crash in between leaves the old checksum
                    # beside the new bytes, which reads as ChecksumMismatch, never as silent damage.
                    self._place(meta_tmp, meta_path)
        return info

    @contextmanager
    def _temp(self) -> Iterator[tuple[Path, IO[bytes]]]:
        """A temp file on the store's filesystem (so rename is atomic), removed unless placed."""
        with self._translated("creating a temp file"):
            fd, name = tempfile.mkstemp(dir=self._tmp, prefix="put-")
        tmp = Path(name)
        try:
            with os.fdopen(fd, "wb") as out:
                yield tmp, out
        finally:
            tmp.unlink(missing_ok=True)

    def _place(self, tmp: Path, target: Path) -> None:
        if target.is_dir() or any(p.is_file() for p in target.parents):
            raise ObjectStoreError(
                f"cannot store {target}: a file and a directory would share a name "
                "(unlike S3, a local store cannot hold both 'a' and 'a/b')"
            )
        for attempt in range(3):
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.replace(tmp, target)
                break
            except FileNotFoundError:
                if attempt == 2:  # a concurrent delete keeps pruning the directory we made
                    raise
        _fsync_dir(target.parent)

    def _write_atomic(self, target: Path, data: bytes) -> None:
        with self._temp() as (tmp, out):
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
            self._place(tmp, target)

    # -- resumable uploads: each under .meta/uploads/<id>/ (upload.json, then NNNNNN.part with
    # NNNNNN.json beside it, written after the part so a listed part is always whole).

    def _upload_dir(self, key: str, upload_id: str) -> Path:
        check_key(key)
        folder = self._root / META_DIR / "uploads" / upload_id
        try:
            doc = json.loads((folder / "upload.json").read_bytes())
        except (OSError, ValueError):
            doc = None
        if not re.fullmatch(r"[0-9a-f]{32}", upload_id) or doc is None or doc.get("key") != key:
            raise UploadNotFound(f"no upload {upload_id!r} of {key!r} in {self._root}: start a new one")
        return folder

    def begin_upload(self, key: str, *, sha256: str, content_type: str = "application/octet-stream",
                     metadata: Mapping[str, str] | None = None) -> str:
        check_key(key)
        upload_id = uuid.uuid4().hex
        doc = {"key": key, "sha256": sha256.lower(), "content_type": content_type, "metadata": check_metadata(metadata)}
        with self._translated(f"starting an upload of {key!r}"):
            self._write_atomic(self._root / META_DIR / "uploads" / upload_id / "upload.json", json.dumps(doc).encode())
        return upload_id

    def uploaded_parts(self, key: str, upload_id: str) -> dict[int, UploadedPart]:
        folder = self._upload_dir(key, upload_id)
        parts = {}
        for sidecar in sorted(folder.glob("[0-9]*.json")):
            doc = json.loads(sidecar.read_bytes())
            parts[doc["number"]] = UploadedPart(doc["number"], doc["size"], doc["md5"])
        return parts

    def upload_part(self, key: str, upload_id: str, number: int, data: bytes) -> UploadedPart:
        folder = self._upload_dir(key, upload_id)
        if not 1 <= number <= 10_000:
            raise ObjectStoreError(f"part number {number} of {key!r}: must be 1..10000")
        part = UploadedPart(number, len(data), hashlib.md5(data).hexdigest())  # S3's part ETag
        # Two senders of one part would otherwise pair one's bytes with the other's MD5.
        part_lock = self._locked(f"{upload_id}/{number}")
        with self._translated(f"storing part {number} of {key!r}"), part_lock:
            (folder / f"{number:06d}.json").unlink(missing_ok=True)
            self._write_atomic(folder / f"{number:06d}.part", data)
            self._write_atomic(folder / f"{number:06d}.json", json.dumps(part.__dict__).encode())
        return part

    def complete_upload(self, key: str, upload_id: str, parts: Sequence[UploadedPart]) -> ObjectInfo:
        folder = self._upload_dir(key, upload_id)
        held = self.uploaded_parts(key, upload_id)
        for part in parts:
            if held.get(part.number) != part:
                raise ObjectStoreError(f"completing {key!r}: part {part.number} is not held as given "
                                       f"({held.get(part.number)}); list the parts and send it again")
        doc = json.loads((folder / "upload.json").read_bytes())
        with ExitStack() as stack:
            files = [stack.enter_context((folder / f"{p.number:06d}.part").open("rb")) for p in parts]
            info = self.put(key, io.BufferedReader(_Joined(files)), content_type=doc["content_type"], metadata=doc["metadata"],
                            expected_sha256=doc["sha256"])
        self.abort_upload(key, upload_id)
        return info

    def abort_upload(self, key: str, upload_id: str) -> None:
        try:
            folder = self._upload_dir(key, upload_id)
        except UploadNotFound:
            return
        with self._translated(f"aborting the upload of {key!r}"):
            shutil.rmtree(folder)

    def delete(self, key: str) -> None:
        data_path, meta_path = self._paths(key)
        with self._translated(f"deleting {key!r}"):
            # Else a put between the two unlinks keeps its data and loses its checksum.
            with self._locked(key):
                data_path.unlink(missing_ok=True)
                meta_path.unlink(missing_ok=True)
            for path, top in ((data_path, self._root), (meta_path, self._meta)):
                _prune_empty_parents(path.parent, top)

    # -- reads

    def _sidecar(self, key: str) -> dict[str, Any]:
        data_path, meta_path = self._paths(key)
        if not data_path.is_file():
            raise ObjectNotFound(f"no object {key!r} in {self._root}")
        try:
            return dict(json.loads(meta_path.read_bytes()))
        except FileNotFoundError:
            return {}  # a file dropped in by hand: no checksum to verify
        except (OSError, ValueError) as e:
            raise ObjectStoreError(f"unreadable metadata for {key!r} ({meta_path}): {e}") from e

    def head(self, key: str) -> ObjectInfo:
        with self._locked(key, shared=True):
            return self._head(key)

    def _head(self, key: str) -> ObjectInfo:
        """The object's info; the caller holds the key's lock, shared at least."""
        sidecar = self._sidecar(key)
        data_path, _ = self._paths(key)
        try:
            size = data_path.stat().st_size
        except FileNotFoundError as e:
            raise ObjectNotFound(f"no object {key!r} in {self._root}") from e
        sha = sidecar.get("sha256")
        return ObjectInfo(
            key=key,
            size=size,
            sha256=sha,
            content_type=sidecar.get("content_type", "application/octet-stream"),
            etag=sha,
            metadata=dict(sidecar.get("metadata", {})),
        )

    def _open(self, key: str) -> BinaryIO:
        data_path, _ = self._paths(key)
        try:
            return data_path.open("rb")
        except FileNotFoundError as e:
            raise ObjectNotFound(f"no object {key!r} in {self._root}") from e
        except OSError as e:
            raise ObjectStoreError(f"cannot read {key!r}: {e}") from e

    @contextmanager
    def _opened_with_info(self, key: str) -> Iterator[tuple[ObjectInfo, BinaryIO]]:
        """The object's info and its bytes, open, from the same put.

        An open file keeps the bytes it was opened on when a later put replaces it, so the
        lock is held only while pairing the sidecar with the file, not while reading.
        """
        with self._locked(key, shared=True):
            info = self._head(key)
            f = self._open(key)
        with f:
            yield info, f

    def get(self, key: str) -> bytes:
        with self._opened_with_info(key) as (info, f):
            data = f.read()
        verify(key, info.sha256, hashlib.sha256(data).hexdigest())
        return data

    def get_range(self, key: str, start: int, end: int) -> bytes:
        check_range(start, end)
        with self._opened_with_info(key) as (info, f):
            if start >= info.size:
                raise ObjectStoreError(
                    f"range {start}-{end} of {key!r} starts past its end ({info.size} bytes)"
                )
            f.seek(start)
            return f.read(end - start + 1)

    def download(self, key: str, path: Path) -> ObjectInfo:
        with self._opened_with_info(key) as (info, f):
            save_verified(key, info.sha256, iter(lambda: f.read(CHUNK), b""), Path(path))
        return info

    def local_copy(self, key: str, path: Path) -> ObjectInfo:
        # A hard link shares the stored bytes, and a later put of the key replaces the stored
        # file rather than writing into it, so the link keeps what it linked. Its SHA-256 was
        # checked on the way in; another file system (or one without links) gets a download.
        data_path, _ = self._paths(key)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        try:
            with self._locked(key, shared=True):  # the link and the info from the same put
                info = self._head(key)
                os.link(data_path, path)
        except FileNotFoundError as e:
            raise ObjectNotFound(f"no object {key!r} in {self._root}") from e
        except OSError:
            return self.download(key, path)
        return info

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        # Walk only the deepest directory the prefix names, then sort by UTF-8 bytes,
        # the order S3 lists in.
        base = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        if base.split("/", 1)[0] == META_DIR:
            return
        start = self._root / base if base else self._root
        keys = []
        for dirpath, dirnames, filenames in os.walk(start):
            rel = Path(dirpath).relative_to(self._root).as_posix()
            if rel == ".":
                dirnames[:] = [d for d in dirnames if d != META_DIR]
                rel = ""
            for name in filenames:
                key = f"{rel}/{name}" if rel else name
                if key.startswith(prefix):
                    keys.append(key)
        for key in sorted(keys, key=lambda k: k.encode("utf-8")):
            try:
                yield self.head(key)
            except ObjectNotFound:
                continue  # deleted while we listed

    @contextmanager
    def _translated(self, what: str) -> Iterator[None]:
        try:
            yield
        except OSError as e:
            raise ObjectStoreError(f"local object store {self._root}: {what}: {e}") from e


class _Joined(io.RawIOBase):
    """Part files read back to back as one stream."""

    def __init__(self, files: Sequence[BinaryIO]) -> None:
        self._files = list(files)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while self._files:
            n = self._files[0].readinto(buffer)  # type: ignore[attr-defined]
            if n:
                return int(n)
            self._files.pop(0)
        return 0


def save_verified(key: str, sha256: str | None, chunks: Iterator[bytes], path: Path) -> None:
    """Write ``chunks`` to ``path`` atomically, only if they hash to ``sha256`` (when known)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    tmp = Path(name)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                out.write(chunk)
                digest.update(chunk)
            out.flush()
            os.fsync(out.fileno())
        verify(key, sha256, digest.hexdigest())
        os.replace(tmp, path)
    except OSError as e:
        raise ObjectStoreError(f"cannot write {key!r} to {path}: {e}") from e
    finally:
        tmp.unlink(missing_ok=True)


def _fsync_dir(path: Path) -> None:
    # The rename is durable only once the directory entry is on disk.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _prune_empty_parents(path: Path, top: Path) -> None:
    while path != top and top in path.parents:
        try:
            path.rmdir()
        except OSError:
            return  # not empty (or another writer just used it): stop
        path = path.parent
