"""ObjectStore on S3 or an S3-compatible server (S3Proxy, MinIO, Ceph RGW).

The SHA-256 of every object is kept in its user metadata (``x-amz-meta-sha256``) and
checked on ``get``/``download``. Bytes and files are hashed before the upload starts,
so the checksum goes up with the object and an ``expected_sha256`` mismatch uploads
nothing. A stream that cannot be rewound is hashed as it goes up in parts; its
multipart upload is only completed when the hash matches, and the checksum is then
stamped on with a self-copy (``MetadataDirective=REPLACE``).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, BinaryIO

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from reelstream.errors import ChecksumMismatch, ConfigError, ObjectNotFound, ObjectStoreError
from reelstream.stores.localdir import (
    CHUNK,
    SHA256,
    check_key,
    check_metadata,
    check_range,
    opened,
    report,
    save_verified,
    verify,
)
from reelstream.stores.ports import (
    ObjectInfo,
    ObjectStore,
    Progress,
    Source,
    UploadedPart,
    UploadNotFound,
)

MiB = 1024 * 1024
MIN_PART = 5 * MiB  # S3 refuses smaller parts (except the last)
MAX_COPY = 5 * 1024 * MiB  # CopyObject's limit; larger objects are copied in parts
_NOT_FOUND = {"NoSuchKey", "404", "NotFound"}


class BucketNotFound(ObjectStoreError):
    """The bucket an S3 store was opened on does not exist (and it was not asked to create it)."""


class S3ObjectStore(ObjectStore):
    """Objects in one bucket; large sources go up in parts.

    A missing bucket is an error (``BucketNotFound``) unless ``create_bucket`` is set: a
    mistyped bucket name must fail where it is typed, not be created empty while the rest of
    the fleet reads the right one. Setup paths (``reel up``, deployment setup, test fixtures)
    pass ``create_bucket=True``.
    """

    # Instance-overridable so a test can push a 20 MB object through the part-wise copy.
    max_copy_size = MAX_COPY

    def __init__(
        self,
        bucket: str,
        endpoint_url: str | None,
        region: str,
        access_key: str | None,
        secret_key: str | None,
        part_size: int = 8 * MiB,
        multipart_threshold: int = 16 * MiB,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
        create_bucket: bool = False,
    ) -> None:
        if part_size < MIN_PART:
            raise ConfigError(
                f"part_size: {part_size} is below S3's minimum part of {MIN_PART} bytes"
            )
        if multipart_threshold < part_size:
            raise ConfigError(
                f"multipart_threshold: {multipart_threshold} is below part_size {part_size}"
            )
        self._bucket = bucket
        self._endpoint = endpoint_url
        self._part_size = part_size
        self._threshold = multipart_threshold
        config = Config(
            s3={"addressing_style": "path"},  # S3-compatible servers rarely have bucket DNS names
            # botocore >= 1.36 adds CRC32 checksums to every request by default, which many
            # S3-compatible servers reject or mis-store; we verify SHA-256 ourselves.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            retries={"max_attempts": 5, "mode": "standard"},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
        )
        self._s3: Any = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            config=config,
        )
        self._ensure_bucket(region, create_bucket)

    def _ensure_bucket(self, region: str, create: bool) -> None:
        try:
            self._s3.head_bucket(Bucket=self._bucket)
            return
        except ClientError as e:
            if _code(e) not in ("404", "NoSuchBucket"):
                raise ObjectStoreError(f"S3 bucket {self._bucket!r} is not accessible: {e}") from e
        except BotoCoreError as e:
            raise ObjectStoreError(
                f"S3 endpoint unreachable for bucket {self._bucket!r}: {e}"
            ) from e
        if not create:
            where = self._endpoint or f"AWS S3 ({region})"
            raise BucketNotFound(
                f"S3 bucket {self._bucket!r} does not exist at {where} (REEL_OBJECTS_URL); "
                "create it or fix the name"
            )
        extra = (
            {}
            if region == "us-east-1"
            else {"CreateBucketConfiguration": {"LocationConstraint": region}}
        )
        try:
            self._s3.create_bucket(Bucket=self._bucket, **extra)
        except ClientError as e:
            if _code(e) != "BucketAlreadyOwnedByYou":  # another process created it first
                raise ObjectStoreError(f"cannot create S3 bucket {self._bucket!r}: {e}") from e
        except BotoCoreError as e:
            raise ObjectStoreError(f"cannot create S3 bucket {self._bucket!r}: {e}") from e

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
        check_key(key)
        user = check_metadata(metadata)
        expected = expected_sha256.lower() if expected_sha256 is not None else None
        with opened(source) as (stream, total), self._translated(f"storing {key!r}"):
            sha = None
            if total is not None:  # bytes, a file, a seekable stream: hash first, upload once
                sha = _hash_and_rewind(stream)
                if expected is not None and sha != expected:
                    raise ChecksumMismatch(
                        f"object {key!r} not stored: its SHA-256 is {sha}, expected {expected}"
                    )
            first = _read_exact(stream, self._threshold + 1)
            report(progress, 0, total)
            if len(first) <= self._threshold:
                size, sha = self._put_single(key, first, sha, expected, content_type, user)
                report(progress, size, size)
            else:
                meta = user if sha is None else {**user, SHA256: sha}
                size, etag, actual = self._put_multipart(
                    key, first, stream, total, expected or sha, content_type, meta, progress
                )
                if sha is None:
                    self._stamp_sha256(key, size, etag, content_type, {**user, SHA256: actual})
                sha = actual
        return ObjectInfo(
            key=key, size=size, sha256=sha, content_type=content_type, etag=None, metadata=user
        )

    def _put_single(
        self,
        key: str,
        data: bytes,
        sha: str | None,
        expected: str | None,
        content_type: str,
        user: dict[str, str],
    ) -> tuple[int, str]:
        actual = hashlib.sha256(data).hexdigest()
        if (sha is not None and actual != sha) or (expected is not None and actual != expected):
            raise ChecksumMismatch(
                f"object {key!r} not stored: its SHA-256 is {actual}, expected {expected or sha}"
            )
        self._s3.put_object(
            Bucket=self._bucket,
            Key=key,
            Body=data,
            ContentType=content_type,
            ContentMD5=_md5(data),
            Metadata={**user, SHA256: actual},
        )
        return len(data), actual

    def _put_multipart(
        self,
        key: str,
        first: bytes,
        stream: BinaryIO,
        total: int | None,
        must_match: str | None,
        content_type: str,
        meta: dict[str, str],
        progress: Progress | None,
    ) -> tuple[int, str, str]:
        """Upload in parts; complete only if the bytes hash to ``must_match`` (when given)."""
        upload = self._s3.create_multipart_upload(
            Bucket=self._bucket, Key=key, ContentType=content_type, Metadata=meta
        )["UploadId"]
        try:
            digest, done, parts = hashlib.sha256(), 0, []
            for number, part in enumerate(_parts(first, stream, self._part_size), start=1):
                digest.update(part)
                # Content-MD5 makes the server refuse a part damaged on the way.
                reply = self._s3.upload_part(
                    Bucket=self._bucket,
                    Key=key,
                    UploadId=upload,
                    PartNumber=number,
                    Body=part,
                    ContentMD5=_md5(part),
                )
                parts.append({"ETag": reply["ETag"], "PartNumber": number})
                done += len(part)
                report(progress, done, total)
            actual = digest.hexdigest()
            if must_match is not None and actual != must_match:
                # Either the caller's expected hash is wrong or the file changed since we hashed it.
                raise ChecksumMismatch(
                    f"object {key!r} not stored: its SHA-256 is {actual}, expected {must_match}"
                )
            reply = self._s3.complete_multipart_upload(
                Bucket=self._bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            self._abort(key, upload)
            raise
        if done != total:
            report(progress, done, done)
        return done, reply["ETag"], actual

    def _abort(self, key: str, upload: str) -> None:
        # The original error matters more; a lifecycle rule reaps stray uploads.
        with suppress(ClientError, BotoCoreError):
            self._s3.abort_multipart_upload(Bucket=self._bucket, Key=key, UploadId=upload)

    def _stamp_sha256(
        self, key: str, size: int, etag: str, content_type: str, meta: dict[str, str]
    ) -> None:
        """Set the checksum learnt during a stream's upload by copying the object onto itself."""
        source = {"Bucket": self._bucket, "Key": key}
        try:
            if size <= self.max_copy_size:
                # IfMatch: if another writer replaced the object meanwhile, leave theirs alone.
                self._s3.copy_object(
                    Bucket=self._bucket,
                    Key=key,
                    CopySource=source,
                    CopySourceIfMatch=etag,
                    MetadataDirective="REPLACE",
                    ContentType=content_type,
                    Metadata=meta,
                )
            else:
                self._copy_in_parts(key, size, etag, content_type, meta)
        except ClientError as e:
            if _code(e) != "PreconditionFailed":
                self._delete_quietly(key)  # better absent than present without its checksum
            raise

    def _copy_in_parts(
        self, key: str, size: int, etag: str, content_type: str, meta: dict[str, str]
    ) -> None:
        upload = self._s3.create_multipart_upload(
            Bucket=self._bucket, Key=key, ContentType=content_type, Metadata=meta
        )["UploadId"]
        try:
            parts, step = [], max(self._part_size, -(-size // 10_000))  # S3 allows 10,000 parts
            for number, start in enumerate(range(0, size, step), start=1):
                end = min(start + step, size) - 1
                reply = self._s3.upload_part_copy(
                    Bucket=self._bucket,
                    Key=key,
                    UploadId=upload,
                    PartNumber=number,
                    CopySource={"Bucket": self._bucket, "Key": key},
                    CopySourceIfMatch=etag,
                    CopySourceRange=f"bytes={start}-{end}",
                )
                parts.append({"ETag": reply["CopyPartResult"]["ETag"], "PartNumber": number})
            self._s3.complete_multipart_upload(
                Bucket=self._bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            self._abort(key, upload)
            raise

    def _delete_quietly(self, key: str) -> None:
        with suppress(ClientError, BotoCoreError):
            self._s3.delete_object(Bucket=self._bucket, Key=key)

    # -- resumable uploads: S3 multipart uploads, the parts listed with ListParts.

    def begin_upload(self, key: str, *, sha256: str, content_type: str = "application/octet-stream",
                     metadata: Mapping[str, str] | None = None) -> str:
        check_key(key)
        meta = {**check_metadata(metadata), SHA256: sha256.lower()}
        with self._translated(f"starting an upload of {key!r}"):
            return str(self._s3.create_multipart_upload(
                Bucket=self._bucket, Key=key, ContentType=content_type, Metadata=meta)["UploadId"])

    @contextmanager
    def _upload_errors(self, key: str, upload_id: str, what: str) -> Iterator[None]:
        try:
            with self._translated(what):
                yield
        except ObjectNotFound as e:  # NoSuchUpload is a 404 too
            raise UploadNotFound(f"no upload {upload_id!r} of {key!r} in bucket {self._bucket!r}: "
                                 "start a new one") from e
        except ObjectStoreError as e:
            if isinstance(e.__cause__, ClientError) and _code(e.__cause__) == "NoSuchUpload":
                raise UploadNotFound(f"no upload {upload_id!r} of {key!r} in bucket {self._bucket!r}: "
                                     "start a new one") from e
            raise

    def uploaded_parts(self, key: str, upload_id: str) -> dict[int, UploadedPart]:
        check_key(key)
        with self._upload_errors(key, upload_id, f"listing the parts of {key!r}"):
            pages = self._s3.get_paginator("list_parts").paginate(Bucket=self._bucket, Key=key, UploadId=upload_id)
            parts = {p["PartNumber"]: UploadedPart(p["PartNumber"], int(p["Size"]), p["ETag"].strip('"'))
                     for page in pages for p in page.get("Parts", [])}
            # AWS answers NoSuchUpload for a finished upload; some servers (S3Proxy) list no parts.
            if not parts and not self._upload_open(key, upload_id):
                raise UploadNotFound(f"no upload {upload_id!r} of {key!r} in bucket {self._bucket!r}: "
                                     "start a new one")
            return parts

    def _upload_open(self, key: str, upload_id: str) -> bool:
        pages = self._s3.get_paginator("list_multipart_uploads").paginate(Bucket=self._bucket, Prefix=key)
        return any(u["Key"] == key and u["UploadId"] == upload_id for page in pages for u in page.get("Uploads", []))

    def upload_part(self, key: str, upload_id: str, number: int, data: bytes) -> UploadedPart:
        check_key(key)
        if not 1 <= number <= 10_000:
            raise ObjectStoreError(f"part number {number} of {key!r}: must be 1..10000")
        with self._upload_errors(key, upload_id, f"storing part {number} of {key!r}"):
            if not self._upload_open(key, upload_id):  # S3Proxy would take a part of a finished upload
                raise UploadNotFound(f"no upload {upload_id!r} of {key!r} in bucket {self._bucket!r}: "
                                     "start a new one")
            # Content-MD5: the server refuses a part damaged on the way.
            self._s3.upload_part(Bucket=self._bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data,
                                 ContentMD5=_md5(data))
        return UploadedPart(number, len(data), hashlib.md5(data).hexdigest())  # S3's part ETag

    def complete_upload(self, key: str, upload_id: str, parts: Sequence[UploadedPart]) -> ObjectInfo:
        check_key(key)
        with self._upload_errors(key, upload_id, f"completing the upload of {key!r}"):
            self._s3.complete_multipart_upload(
                Bucket=self._bucket, Key=key, UploadId=upload_id,
                MultipartUpload={"Parts": [{"PartNumber": p.number, "ETag": f'"{p.md5}"'} for p in parts]})
        return self.head(key)

    def abort_upload(self, key: str, upload_id: str) -> None:
        check_key(key)
        with suppress(UploadNotFound), self._upload_errors(key, upload_id, f"aborting the upload of {key!r}"):
            self._s3.abort_multipart_upload(Bucket=self._bucket, Key=key, UploadId=upload_id)

    def delete(self, key: str) -> None:
        check_key(key)
        with self._translated(f"deleting {key!r}"):
            self._s3.delete_object(Bucket=self._bucket, Key=key)  # 204 even when absent

    # -- reads

    def head(self, key: str) -> ObjectInfo:
        check_key(key)
        with self._translated(f"reading the metadata of {key!r}"):
            reply = self._s3.head_object(Bucket=self._bucket, Key=key)
        return _info(key, reply)

    def get(self, key: str) -> bytes:
        check_key(key)
        with self._translated(f"reading {key!r}"):
            reply = self._s3.get_object(Bucket=self._bucket, Key=key)
            data: bytes = reply["Body"].read()
        verify(key, reply.get("Metadata", {}).get(SHA256), hashlib.sha256(data).hexdigest())
        return data

    def get_range(self, key: str, start: int, end: int) -> bytes:
        check_key(key)
        check_range(start, end)
        with self._translated(f"reading bytes {start}-{end} of {key!r}"):
            reply = self._s3.get_object(Bucket=self._bucket, Key=key, Range=f"bytes={start}-{end}")
            data: bytes = reply["Body"].read()
        if "ContentRange" not in reply:  # a server that ignored Range sent the whole object
            data = data[start : end + 1]
        return data

    def download(self, key: str, path: Path) -> ObjectInfo:
        check_key(key)
        with self._translated(f"downloading {key!r}"):
            reply = self._s3.get_object(Bucket=self._bucket, Key=key)
            info = _info(key, reply)
            save_verified(key, info.sha256, reply["Body"].iter_chunks(CHUNK), Path(path))
        return info

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        # ListObjectsV2 returns keys in UTF-8 byte order but without user metadata, so each
        # object costs a HEAD: fine for a title's segments, not for a whole bucket.
        pages = self._s3.get_paginator("list_objects_v2").paginate(
            Bucket=self._bucket, Prefix=prefix
        )
        with self._translated(f"listing {prefix!r}"):
            for page in pages:
                for item in page.get("Contents", []):
                    try:
                        yield self.head(item["Key"])
                    except ObjectNotFound:
                        continue  # deleted while we listed

    @contextmanager
    def _translated(self, what: str) -> Iterator[None]:
        try:
            yield
        except ClientError as e:
            if _code(e) in _NOT_FOUND:
                raise ObjectNotFound(f"no object in S3 bucket {self._bucket!r}: {what}") from e
            raise ObjectStoreError(f"S3 bucket {self._bucket!r}: {what}: {e}") from e
        except BotoCoreError as e:
            raise ObjectStoreError(f"S3 bucket {self._bucket!r}: {what}: {e}") from e


def _info(key: str, reply: Mapping[str, Any]) -> ObjectInfo:
    meta = dict(reply.get("Metadata", {}))
    sha = meta.pop(SHA256, None)
    return ObjectInfo(
        key=key,
        size=int(reply["ContentLength"]),
        sha256=sha,
        content_type=reply.get("ContentType", "application/octet-stream"),
        etag=str(reply.get("ETag", "")).strip('"') or None,
        metadata=meta,
    )


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def _hash_and_rewind(stream: BinaryIO) -> str:
    start, digest = stream.tell(), hashlib.sha256()
    while chunk := stream.read(CHUNK):
        digest.update(chunk)
    stream.seek(start)
    return digest.hexdigest()


def _read_exact(stream: BinaryIO, size: int) -> bytes:
    """Read ``size`` bytes, fewer only at the end (a raw stream's read may return short)."""
    chunks, left = [], size
    while left > 0 and (chunk := stream.read(min(left, CHUNK * 8))):
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _parts(first: bytes, stream: BinaryIO, part_size: int) -> Iterator[bytes]:
    """``first`` then the rest of ``stream``, cut into ``part_size`` parts (the last shorter)."""
    buffer = first
    while True:
        if len(buffer) < part_size:
            buffer += _read_exact(stream, part_size - len(buffer))
        if not buffer:
            return
        yield buffer[:part_size]
        buffer = buffer[part_size:]
