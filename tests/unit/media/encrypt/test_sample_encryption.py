"""The batched encryptors against straightforward per-sample, per-block references
written from ISO/IEC 23001-7's text; subsample organisation; H.264 bit reading."""

from __future__ import annotations

import random

import pytest
from Crypto.Cipher import AES

from reelstream.media.encrypt.cenc import CbcsEncryptor, CencEncryptor, protected_ranges
from reelstream.media.encrypt.h264 import BitReader, unescape
from reelstream.media.encrypt.subsamples import organize

KEY = bytes.fromhex("00112233445566778899aabbccddeeff")


def _fragment(rng: random.Random, n: int, video: bool):
    sizes = [rng.randint(20, 3000) for _ in range(n)]
    data = bytearray(rng.randbytes(sum(sizes) + 37))  # +37: bytes after the samples
    offsets, pos = [], 5
    for s in sizes:
        offsets.append(pos)
        pos += s
    maps = []
    for s in sizes:
        if not video:
            maps.append(None)
            continue
        clear = rng.randint(5, min(40, s))
        protected = (s - clear) // 16 * 16
        maps.append(organize([(clear, protected), (s - clear - protected, 0)], align=True))
    return data, offsets, sizes, maps


def _ref_cenc(data: bytes, offsets, sizes, maps, iv: bytes) -> tuple[bytes, list[bytes]]:
    """10.1: per sample, CTR from the sample's IV over its protected bytes in order."""
    out, ivs, cur = bytearray(data), [], int.from_bytes(iv, "big")
    for o, s, m in zip(offsets, sizes, maps):
        ivs.append(cur.to_bytes(len(iv), "big"))
        block = ivs[-1] + bytes(16 - len(iv))
        ctr = AES.new(KEY, AES.MODE_CTR, nonce=block[:8], initial_value=block[8:])
        ranges = protected_ranges(o, s, m)
        total = 0
        for a, n in ranges:
            out[a:a + n] = ctr.encrypt(bytes(out[a:a + n]))
            total += n
        cur += 1 if len(iv) == 8 else -(-total // 16)
    return bytes(out), ivs


def _ref_cbcs(data: bytes, offsets, sizes, maps, iv: bytes, crypt: int, skip: int) -> bytes:
    """10.4: per subsample, IV reset; blocks 0, 10, 20... CBC-chained; partial block clear."""
    out = bytearray(data)
    for o, s, m in zip(offsets, sizes, maps):
        for a, n in protected_ranges(o, s, m):
            prev = iv
            k = 0
            while (k + 1) * 16 <= n:
                if crypt == 0 or k % (crypt + skip) < crypt:
                    block = bytes(x ^ y for x, y in zip(out[a + 16 * k:a + 16 * k + 16], prev))
                    prev = AES.new(KEY, AES.MODE_ECB).encrypt(block)
                    out[a + 16 * k:a + 16 * k + 16] = prev
                k += 1
    return bytes(out)


@pytest.mark.parametrize("video", [True, False])
@pytest.mark.parametrize("iv", [bytes(range(16)), bytes(range(8)),
                                bytes.fromhex("0000000000000001ffffffffffffffff")])  # low half wraps
def test_cenc_batched_equals_reference(video: bool, iv: bytes) -> None:
    rng = random.Random(7)
    enc = CencEncryptor(KEY, iv)
    expected_iv = iv
    for _ in range(3):  # state (the next IV) carries over from fragment to fragment
        data, offsets, sizes, maps = _fragment(rng, 25, video)
        want, ivs = _ref_cenc(bytes(data), offsets, sizes, maps, expected_iv)
        entries = enc.encrypt_fragment(data, offsets, sizes, maps)
        assert bytes(data) == want
        assert [e.iv for e in entries] == ivs
        assert [e.subsamples for e in entries] == [m or () for m in maps]
        last_total = sum(n for _, n in protected_ranges(offsets[-1], sizes[-1], maps[-1]))
        step = 1 if len(iv) == 8 else -(-last_total // 16)
        expected_iv = ((int.from_bytes(ivs[-1], "big") + step) % (1 << 8 * len(iv))).to_bytes(len(iv), "big")


@pytest.mark.parametrize("video", [True, False])
def test_cbcs_equals_reference(video: bool) -> None:
    rng = random.Random(11)
    iv = rng.randbytes(16)
    pattern = (1, 9) if video else (0, 0)
    data, offsets, sizes, maps = _fragment(rng, 30, video)
    if video:  # cbcs does not align: protected runs end anywhere
        maps = [((m[0][0], m[0][1] + m[1][0]),) if len(m) > 1 else m for m in maps]
    want = _ref_cbcs(bytes(data), offsets, sizes, maps, iv, *pattern)
    entries = CbcsEncryptor(KEY, iv, pattern).encrypt_fragment(data, offsets, sizes, maps)
    assert bytes(data) == want
    assert all(e.iv == b"" for e in entries)


def test_encryption_changes_only_protected_bytes() -> None:
    rng = random.Random(3)
    data, offsets, sizes, maps = _fragment(rng, 10, True)
    before = bytes(data)
    CencEncryptor(KEY, bytes(16)).encrypt_fragment(data, offsets, sizes, maps)
    protected = {i for o, s, m in zip(offsets, sizes, maps) for a, n in protected_ranges(o, s, m)
                 for i in range(a, a + n)}
    for i, (x, y) in enumerate(zip(before, data)):
        if i not in protected:
            assert x == y
    assert sum(x != y for x, y in zip(before, data)) > 0.9 * len(protected)


def test_organize_merges_clear_runs_and_keeps_tails_clear() -> None:
    # NAL 1: SEI (clear); NAL 2: slice with 4+1+3 header bytes and 100 slice bytes
    assert organize([(30, 0), (8, 100)], align=True) == ((38, 96), (4, 0))
    assert organize([(30, 0), (8, 100)], align=False) == ((38, 100),)
    assert organize([(8, 100), (8, 50)], align=True) == ((8, 96), (12, 48), (2, 0))
    assert organize([(70000, 0), (5, 32)], align=True) == ((65535, 0), (4470, 32))


def test_protected_ranges_must_cover_the_sample() -> None:
    with pytest.raises(ValueError):
        protected_ranges(0, 100, ((10, 80),))


def test_exp_golomb_and_emulation_prevention() -> None:
    r = BitReader(bytes([0b10100110, 0b01000000]))  # ue: 1->0, 010->1, 011->2, 00100->3
    assert [r.ue(), r.ue(), r.ue(), r.ue()] == [0, 1, 2, 3]
    r = BitReader(bytes([0b01001100, 0b10000000]))  # se: 010 -> +1, 011 -> -1, 00100 -> +2
    assert [r.se(), r.se(), r.se()] == [1, -1, 2]
    rbsp, removed = unescape(b"\x65\x00\x00\x03\x01\x00\x00\x03\x00", 9)
    assert rbsp == b"\x65\x00\x00\x01\x00\x00\x00" and removed == [3, 7]
