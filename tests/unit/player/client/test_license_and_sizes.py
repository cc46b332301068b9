"""Clear Key license bodies (EME §9.1.3/§9.1.4) and the segment-size sidecar."""

from __future__ import annotations

import json

import pytest

from reelstream.media.package import sizes
from reelstream.media.package.model import Segment
from reelstream.player.client.license import LicenseInvalid, b64url, parse_keys, request_body

KID = "0123456789abcdef0123456789abcdef"


def test_request_names_kids_base64url_without_padding() -> None:
    doc = json.loads(request_body([KID]))
    assert doc == {"kids": ["ASNFZ4mrze8BI0VniavN7w"], "type": "temporary"}


def test_jwk_set_gives_keys_by_hex_kid() -> None:
    body = json.dumps({"keys": [{"kty": "oct", "kid": b64url(bytes.fromhex(KID)), "k": b64url(b"k" * 16)}],
                       "type": "temporary"}).encode()
    assert parse_keys(body, "http://gw/licenses/clearkey?ticket=T") == {KID: b"k" * 16}


@pytest.mark.parametrize("body", [b"not json", b'{"nokeys": []}',
                                  json.dumps({"keys": [{"kty": "oct", "kid": "AAAA", "k": "AAAA"}]}).encode()])
def test_bad_license_bodies_are_refused_without_the_ticket_in_the_message(body: bytes) -> None:
    with pytest.raises(LicenseInvalid) as caught:
        parse_keys(body, "http://gw/licenses/clearkey?ticket=SECRET")
    assert "SECRET" not in str(caught.value)


def test_sizes_sidecar_round_trip() -> None:
    segments = [Segment(1, 0, 2, 1000), Segment(2, 2, 2, 1200), Segment(3, 4, 1, 400)]
    parsed = sizes.parse(sizes.render("v1", segments), "v1/segment-sizes.json")
    assert (parsed.track_id, parsed.first_number, parsed.sizes) == ("v1", 1, (1000, 1200, 400))
    assert parsed.size(2) == 1200 and parsed.size(4) is None and parsed.size(0) is None


@pytest.mark.parametrize("data", [b"[]", b'{"format": "other"}',
                                  json.dumps({"format": sizes.FORMAT, "first_number": 1, "sizes": [1, -2]}).encode(),
                                  b"\xff"])
def test_bad_sidecars_are_refused(data: bytes) -> None:
    with pytest.raises(sizes.SizesInvalid, match="segment-sizes.json"):
        sizes.parse(data, "v1/segment-sizes.json")


def test_render_refuses_gaps_in_segment_numbers() -> None:
    with pytest.raises(ValueError, match="not consecutive"):
        sizes.render("v1", [Segment(1, 0, 2, 10), Segment(3, 4, 2, 10)])
