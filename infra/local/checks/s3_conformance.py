"""S3 API conformance check for the local S3 server (what ReelStream relies on).

    .venv/bin/python infra/local/checks/s3_conformance.py

Creates a uniquely named bucket, exercises it and deletes it. Exit 0 when all pass.
Connection settings from the REEL_S3_* variables (infra/local/env.sh).
"""
import hashlib
import io
import os
import sys
import time
import uuid

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

s3 = boto3.client("s3", endpoint_url=os.environ.get("REEL_S3_ENDPOINT", "http://127.0.0.1:18333"),
    aws_access_key_id=os.environ.get("REEL_S3_ACCESS_KEY", "reelstream"),
    aws_secret_access_key=os.environ.get("REEL_S3_SECRET_KEY", "reelstream-secret"),
    region_name=os.environ.get("REEL_S3_REGION", "us-east-1"),
    config=Config(s3={"addressing_style": "path"}, request_checksum_calculation="when_required",
                  response_checksum_validation="when_required", signature_version="s3v4"))
results = {}
def check(name, fn):
    t = time.time()
    try:
        fn(); results[name] = "ok %.2fs" % (time.time() - t)
    except Exception as e:  # noqa: BLE001  (a conformance check reports every failure)
        results[name] = f"FAIL {type(e).__name__}: {e}"

b = "reel-check-" + uuid.uuid4().hex[:8]
check("create_bucket", lambda: s3.create_bucket(Bucket=b))
check("head_bucket", lambda: s3.head_bucket(Bucket=b))
data = os.urandom(1_000_000)
def putget():
    s3.put_object(Bucket=b, Key="a/b/obj.bin", Body=data, ContentType="video/mp4",
                  Metadata={"title": "Big Buck Bunny", "asset-id": "42"})
    r = s3.get_object(Bucket=b, Key="a/b/obj.bin")
    assert r["Body"].read() == data
    assert r["ContentType"] == "video/mp4", r["ContentType"]
    assert r["Metadata"] == {"title": "Big Buck Bunny", "asset-id": "42"}, r["Metadata"]
    h = s3.head_object(Bucket=b, Key="a/b/obj.bin")
    assert h["ContentLength"] == len(data) and h["Metadata"]["asset-id"] == "42"
    assert h["ETag"].strip('"') == hashlib.md5(data).hexdigest(), h["ETag"]
check("put_get_metadata", putget)
def rng():
    r = s3.get_object(Bucket=b, Key="a/b/obj.bin", Range="bytes=100-199")
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 206, r["ResponseMetadata"]["HTTPStatusCode"]
    assert r["Body"].read() == data[100:200]
    assert r["ContentRange"] == f"bytes 100-199/{len(data)}", r["ContentRange"]
    r = s3.get_object(Bucket=b, Key="a/b/obj.bin", Range="bytes=-10")
    assert r["Body"].read() == data[-10:]
check("range_get_206", rng)
def lst():
    for k in ["a/c/1", "a/c/2", "z/1"]:
        s3.put_object(Bucket=b, Key=k, Body=b"x")
    r = s3.list_objects_v2(Bucket=b, Prefix="a/")
    keys = [o["Key"] for o in r["Contents"]]
    assert keys == ["a/b/obj.bin", "a/c/1", "a/c/2"], keys
    r = s3.list_objects_v2(Bucket=b, Prefix="a/", Delimiter="/")
    assert [p["Prefix"] for p in r["CommonPrefixes"]] == ["a/b/", "a/c/"], r
    r = s3.list_objects_v2(Bucket=b, MaxKeys=2)
    assert r["IsTruncated"] and len(r["Contents"]) == 2
    r2 = s3.list_objects_v2(Bucket=b, MaxKeys=2, ContinuationToken=r["NextContinuationToken"])
    assert [o["Key"] for o in r2["Contents"]] == ["a/c/2", "z/1"], r2["Contents"]
check("list_prefix_delim_paging", lst)
def mpu():
    big = os.urandom(20 * 1024 * 1024 + 12345)
    part = 5 * 1024 * 1024
    up = s3.create_multipart_upload(Bucket=b, Key="mp/big.bin", ContentType="video/mp4",
                                    Metadata={"upload": "resumable"})
    uid = up["UploadId"]
    parts = []
    chunks = [big[i:i+part] for i in range(0, len(big), part)]
    for n, c in enumerate(chunks[:3], 1):
        r = s3.upload_part(Bucket=b, Key="mp/big.bin", UploadId=uid, PartNumber=n, Body=c)
        parts.append({"PartNumber": n, "ETag": r["ETag"]})
    # resume: list the unfinished upload and its parts
    ups = s3.list_multipart_uploads(Bucket=b)
    assert any(u["UploadId"] == uid for u in ups.get("Uploads", [])), ups
    lp = s3.list_parts(Bucket=b, Key="mp/big.bin", UploadId=uid)
    got = [(p["PartNumber"], p["Size"], p["ETag"]) for p in lp["Parts"]]
    assert [g[0] for g in got] == [1, 2, 3], got
    assert all(g[1] == part for g in got), got
    assert [g[2] for g in got] == [p["ETag"] for p in parts], (got, parts)
    for n, c in enumerate(chunks[3:], 4):
        r = s3.upload_part(Bucket=b, Key="mp/big.bin", UploadId=uid, PartNumber=n, Body=c)
        parts.append({"PartNumber": n, "ETag": r["ETag"]})
    s3.complete_multipart_upload(Bucket=b, Key="mp/big.bin", UploadId=uid, MultipartUpload={"Parts": parts})
    r = s3.get_object(Bucket=b, Key="mp/big.bin")
    body = r["Body"].read()
    assert body == big, (len(body), len(big))
    assert r["Metadata"] == {"upload": "resumable"}, r["Metadata"]
    assert r["ContentType"] == "video/mp4", r["ContentType"]
    assert r["ETag"].strip('"').endswith("-5"), r["ETag"]
    ups = s3.list_multipart_uploads(Bucket=b)
    assert not any(u["UploadId"] == uid for u in ups.get("Uploads", [])), ups
check("multipart_20MB_listparts", mpu)
def abort():
    up = s3.create_multipart_upload(Bucket=b, Key="mp/aborted.bin")
    s3.upload_part(Bucket=b, Key="mp/aborted.bin", UploadId=up["UploadId"], PartNumber=1, Body=os.urandom(5*1024*1024))
    s3.abort_multipart_upload(Bucket=b, Key="mp/aborted.bin", UploadId=up["UploadId"])
    ups = s3.list_multipart_uploads(Bucket=b).get("Uploads", [])
    assert not any(u["UploadId"] == up["UploadId"] for u in ups), ups
    # AWS answers NoSuchUpload here; S3Proxy's filesystem backend answers an empty part list
    try:
        parts = s3.list_parts(Bucket=b, Key="mp/aborted.bin", UploadId=up["UploadId"]).get("Parts", [])
        assert not parts, parts
    except ClientError as e:
        assert e.response["Error"]["Code"] == "NoSuchUpload", e.response["Error"]
check("abort_multipart", abort)
def transfer():
    big = os.urandom(40 * 1024 * 1024)
    s3.upload_fileobj(io.BytesIO(big), b, "tm/big.bin")
    out = io.BytesIO(); s3.download_fileobj(b, "tm/big.bin", out)
    assert out.getvalue() == big
check("boto3_transfer_40MB", transfer)
def copy():
    s3.copy_object(Bucket=b, Key="copy.bin", CopySource={"Bucket": b, "Key": "a/b/obj.bin"})
    assert s3.get_object(Bucket=b, Key="copy.bin")["Body"].read() == data
check("copy_object", copy)
def presigned():
    import urllib.request
    url = s3.generate_presigned_url("get_object", Params={"Bucket": b, "Key": "a/b/obj.bin"}, ExpiresIn=60)
    assert urllib.request.urlopen(url).read() == data
    url = s3.generate_presigned_url("put_object", Params={"Bucket": b, "Key": "pre/put.bin"}, ExpiresIn=60)
    # an explicit Content-Type: urllib's default (form-urlencoded) makes S3Proxy reject the signature
    req = urllib.request.Request(url, data=b"hello", method="PUT",
                                 headers={"Content-Type": "application/octet-stream"})
    urllib.request.urlopen(req).read()
    assert s3.get_object(Bucket=b, Key="pre/put.bin")["Body"].read() == b"hello"
check("presigned_get_put", presigned)
def missing():
    try:
        s3.get_object(Bucket=b, Key="nope"); raise AssertionError
    except ClientError as e:
        assert e.response["Error"]["Code"] == "NoSuchKey", e.response["Error"]
check("nosuchkey", missing)
def unicode_key():
    k = "vidéos/a b+c/seg 001.m4s"
    s3.put_object(Bucket=b, Key=k, Body=b"x")
    assert k in [o["Key"] for o in s3.list_objects_v2(Bucket=b, Prefix="vid")["Contents"]]
    assert s3.get_object(Bucket=b, Key=k)["Body"].read() == b"x"
check("unicode_space_plus_key", unicode_key)
def delete():
    s3.delete_object(Bucket=b, Key="z/1")
    r = s3.delete_objects(Bucket=b, Delete={"Objects": [{"Key": k} for k in ["a/c/1", "a/c/2"]]})
    assert len(r.get("Deleted", [])) == 2, r
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=b).get("Contents", [])]
    assert "z/1" not in keys and "a/c/1" not in keys, keys
    for k in keys: s3.delete_object(Bucket=b, Key=k)
    s3.delete_bucket(Bucket=b)
check("delete_objects_and_bucket", delete)
w = max(map(len, results))
for k, v in results.items(): print(k.ljust(w), v)
ok = all(v.startswith("ok") for v in results.values())
print("ALL OK" if ok else "SOME FAILED")
sys.exit(0 if ok else 1)
