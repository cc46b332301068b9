"""Adapter fixtures for the state and object contract suites.

Each fixture is parametrized over both adapters of its port, so every contract test runs
once per adapter. The real servers' adapters share one keyspace or bucket per test
session (created with a unique name, dropped at the end); each test isolates itself with
its own view names or key prefix. Harnesses also carry the few adapter-specific hooks a
contract needs (reopening a store, corrupting a stored object, finding leftovers).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from reelstream.stores.cassandra import CassandraStateStore
from reelstream.stores.localdir import LocalDirObjectStore
from reelstream.stores.ports import ObjectStore, StateStore
from reelstream.stores.s3 import S3ObjectStore
from reelstream.stores.sqlite_state import SqliteStateStore

MiB = 1024 * 1024

# --------------------------------------------------------------------------- state


@dataclass
class StateHarness:
    store: StateStore
    reopen: Callable[[], StateStore]  # a second instance on the same data (another process's view)


@pytest.fixture(scope="session")
def cassandra_keyspace(cassandra_contact: tuple[list[str], int]) -> Iterator[str]:
    from cassandra.cluster import Cluster

    hosts, port = cassandra_contact
    keyspace = f"reel_test_{uuid.uuid4().hex[:10]}"
    yield keyspace
    cluster = Cluster(contact_points=hosts, port=port, protocol_version=5, connect_timeout=5)
    try:
        cluster.connect().execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=60)
    finally:
        cluster.shutdown()


@pytest.fixture(scope="session")
def cassandra_store(
    cassandra_contact: tuple[list[str], int],
    cassandra_keyspace: str,
) -> Iterator[CassandraStateStore]:
    hosts, port = cassandra_contact
    # A small page size, so that scanning a few hundred rows crosses pages.
    store = CassandraStateStore(hosts, port, cassandra_keyspace, page_size=50)
    yield store
    store.close()


@pytest.fixture(params=["sqlite", "cassandra"])
def state(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StateHarness]:
    opened: list[StateStore] = []
    if request.param == "sqlite":

        def make() -> StateStore:
            opened.append(SqliteStateStore(tmp_path / "state.db"))
            return opened[-1]

        store = make()
    else:
        hosts, port = request.getfixturevalue("cassandra_contact")
        keyspace = request.getfixturevalue("cassandra_keyspace")
        store = request.getfixturevalue("cassandra_store")

        def make() -> StateStore:
            opened.append(CassandraStateStore(hosts, port, keyspace, page_size=50))
            return opened[-1]

    yield StateHarness(store=store, reopen=make)
    for extra in opened:
        extra.close()


# --------------------------------------------------------------------------- objects


@dataclass
class ObjectHarness:
    store: ObjectStore
    prefix: str  # every key of a test starts with it: the bucket is shared by the session
    corrupt: Callable[[str, bytes], None]  # replace the stored bytes, keeping the recorded sha256
    leftovers: Callable[[], list[str]]  # temp files or multipart uploads an aborted put left


@pytest.fixture(scope="session")
def s3_bucket(s3_settings: dict[str, str]) -> Iterator[tuple[str, Any]]:
    """The session's bucket and a raw boto3 client for tampering and cleanup."""
    import boto3
    from botocore.config import Config

    bucket = f"reel-test-{uuid.uuid4().hex[:10]}"
    client = boto3.client(
        "s3",
        endpoint_url=s3_settings["endpoint"],
        region_name=s3_settings["region"],
        aws_access_key_id=s3_settings["access_key"],
        aws_secret_access_key=s3_settings["secret_key"],
        config=Config(
            s3={"addressing_style": "path"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )
    yield bucket, client
    try:
        for upload in client.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
            client.abort_multipart_upload(
                Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"]
            )
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                client.delete_object(Bucket=bucket, Key=item["Key"])
        client.delete_bucket(Bucket=bucket)
    except client.exceptions.NoSuchBucket:
        pass


@pytest.fixture(params=["localdir", "s3"])
def objects(request: pytest.FixtureRequest, tmp_path: Path, unique: str) -> ObjectHarness:
    prefix = f"t{unique}/"
    if request.param == "localdir":
        root = tmp_path / "objects"
        local = LocalDirObjectStore(root)

        def corrupt_local(key: str, data: bytes) -> None:
            (root / key).write_bytes(data)

        def local_leftovers() -> list[str]:
            return sorted(p.name for p in (root / ".meta" / "tmp").iterdir())

        return ObjectHarness(local, prefix, corrupt_local, local_leftovers)

    settings = request.getfixturevalue("s3_settings")
    bucket, client = request.getfixturevalue("s3_bucket")
    s3 = S3ObjectStore(
        bucket,
        settings["endpoint"],
        settings["region"],
        settings["access_key"],
        settings["secret_key"],
        part_size=5 * MiB,
        multipart_threshold=5 * MiB,
        create_bucket=True,  # the session's own bucket, made by the first test that opens it
    )
    # Lowered so the 20 MB stream test goes through the part-wise self-copy that only
    # objects over 5 GiB would otherwise reach.
    s3.max_copy_size = 8 * MiB

    def corrupt_s3(key: str, data: bytes) -> None:
        old = client.head_object(Bucket=bucket, Key=key)["Metadata"]
        client.put_object(Bucket=bucket, Key=key, Body=data, Metadata=old)

    def s3_leftovers() -> list[str]:
        uploads = client.list_multipart_uploads(Bucket=bucket, Prefix=prefix).get("Uploads", [])
        return sorted(u["Key"] for u in uploads)

    return ObjectHarness(s3, prefix, corrupt_s3, s3_leftovers)
