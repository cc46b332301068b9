"""Edge URL signing: nginx secure_link_md5's exact formula, scoped to a title, expiring."""

from __future__ import annotations

import base64
import hashlib

import pytest

from reelstream.gateways.signing import EdgeSigner, SignatureRejected, nginx_location, verify


def test_formula_matches_nginx_secure_link_md5() -> None:
    signer = EdgeSigner("https://edge", "s3cret", ttl_s=100)
    base = signer.media_base("packages/t1/p1/", "t1", now_s=1_000)
    expected = base64.urlsafe_b64encode(hashlib.md5(b"1100/packages/t1/ s3cret").digest()).decode().rstrip("=")
    assert base == f"https://edge/s/{expected}/1100/packages/t1/p1/"
    path = base.removeprefix("https://edge") + "h264-360p/seg-00001.m4s"
    assert verify(path, "s3cret", now_s=1_050).object_key == "packages/t1/p1/h264-360p/seg-00001.m4s"
    # Another package of the same title is in scope; another title is not.
    assert verify(path.replace("/p1/", "/p2/"), "s3cret", 1_050).object_key.startswith("packages/t1/p2/")
    with pytest.raises(SignatureRejected) as e:
        verify(path.replace("/t1/", "/t2/"), "s3cret", 1_050)
    assert e.value.status == 403
    with pytest.raises(SignatureRejected) as e:
        verify(path, "s3cret", now_s=1_100)
    assert e.value.status == 410
    with pytest.raises(SignatureRejected) as e:
        verify("/s/x/1/packages/t1/../etc", "s3cret", 0)
    assert e.value.status == 400
    assert 'secure_link_md5 "$sl_expires$sl_scope $reel_edge_secret";' in nginx_location()
    with pytest.raises(ValueError):
        signer.media_base("packages/t2/p1/", "t1", 0)
