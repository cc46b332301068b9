"""The S3 adapter and a bucket that does not exist: created only when asked, else a named error.

A mistyped bucket used to be created empty on first use, so `reel ingest` succeeded into it
while the worker fleet, on the right bucket, failed the title with "no object".
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reelstream.config import Settings
from reelstream.runtime import Runtime
from reelstream.stores.s3 import BucketNotFound, S3ObjectStore
from tests.support.media import title_metadata, write_metadata

pytestmark = pytest.mark.integration


@pytest.fixture
def client(s3_settings: dict[str, str]) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=s3_settings["endpoint"], region_name=s3_settings["region"],
                        aws_access_key_id=s3_settings["access_key"], aws_secret_access_key=s3_settings["secret_key"],
                        config=Config(s3={"addressing_style": "path"}, request_checksum_calculation="when_required",
                                      response_checksum_validation="when_required"))


@pytest.fixture
def bucket(client: Any, unique: str) -> Iterator[str]:
    name = f"reel-bucket-{unique}"
    yield name
    try:
        for item in client.list_objects_v2(Bucket=name).get("Contents", []):
            client.delete_object(Bucket=name, Key=item["Key"])
        client.delete_bucket(Bucket=name)
    except client.exceptions.NoSuchBucket:
        pass


def exists(client: Any, name: str) -> bool:
    return any(b["Name"] == name for b in client.list_buckets().get("Buckets", []))


def open_store(s3_settings: dict[str, str], name: str, **flags: bool) -> S3ObjectStore:
    return S3ObjectStore(name, s3_settings["endpoint"], s3_settings["region"], s3_settings["access_key"],
                         s3_settings["secret_key"], **flags)


def test_a_missing_bucket_is_named_and_not_created(s3_settings: dict[str, str], client: Any, bucket: str) -> None:
    with pytest.raises(BucketNotFound) as info:
        open_store(s3_settings, bucket)
    assert str(info.value) == (f"S3 bucket {bucket!r} does not exist at {s3_settings['endpoint']} "
                               "(REEL_OBJECTS_URL); create it or fix the name")
    assert not exists(client, bucket)


def test_setup_creates_the_bucket_when_asked_and_then_it_just_opens(s3_settings: dict[str, str], client: Any,
                                                                    bucket: str) -> None:
    open_store(s3_settings, bucket, create_bucket=True).put("a", b"x")
    assert exists(client, bucket)
    assert open_store(s3_settings, bucket, create_bucket=True).get("a") == b"x"  # already there: no error
    assert open_store(s3_settings, bucket).get("a") == b"x"


def test_ingest_into_a_mistyped_bucket_fails_and_creates_nothing(s3_settings: dict[str, str], client: Any,
                                                                  bucket: str, tmp_path: Path) -> None:
    master = tmp_path / "film.mp4"
    master.write_bytes(os.urandom(4096))  # refused before it is read as media
    metadata = write_metadata(tmp_path / "title.json", title_metadata("film-1", master))
    env = {**os.environ, "REEL_DATA_DIR": str(tmp_path / "reel"),
           "REEL_OBJECTS_URL": f"s3://{bucket}?endpoint={s3_settings['endpoint']}",
           "REEL_S3_ACCESS_KEY": s3_settings["access_key"], "REEL_S3_SECRET_KEY": s3_settings["secret_key"]}
    done = subprocess.run([sys.executable, "-m", "reelstream.cli", "ingest", str(master), "--quiet", "--metadata",
                           str(metadata)], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2, done.stderr
    assert f"reel ingest: S3 bucket {bucket!r} does not exist at {s3_settings['endpoint']}" in done.stderr
    assert not exists(client, bucket)
    runtime = Runtime(Settings(data_dir=tmp_path / "reel"))
    reader = runtime.log.consumer(["reel.catalog"], group_id=None)
    assert reader.poll(max_records=100, timeout=1) == []
    reader.close()
    runtime.close()


@pytest.mark.parametrize("step", ["reel topics --create", "reel up"])
def test_the_setup_steps_create_the_origin_bucket(s3_settings: dict[str, str], client: Any, bucket: str,
                                                  tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  step: str) -> None:
    # `reel up` and `reel topics --create` (docker-compose's setup service) are the setup
    # paths: on a fresh S3 server they make the bucket every other role then opens.
    import base64

    from reelstream.cli import main
    from reelstream.config import load_settings
    from reelstream.up import _check_servers

    monkeypatch.setenv("REEL_S3_ACCESS_KEY", s3_settings["access_key"])
    monkeypatch.setenv("REEL_S3_SECRET_KEY", s3_settings["secret_key"])
    monkeypatch.setenv("REEL_OBJECTS_URL", f"s3://{bucket}?endpoint={s3_settings['endpoint']}")
    monkeypatch.setenv("REEL_DATA_DIR", str(tmp_path))
    if step == "reel up":
        monkeypatch.setenv("REEL_KEK", base64.b64encode(bytes(32)).decode())
        _check_servers(load_settings())
    else:
        assert main(["topics", "--create"]) == 0
    assert exists(client, bucket)
