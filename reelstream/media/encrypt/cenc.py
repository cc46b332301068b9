"""Sample encryption for the two Common Encryption schemes (ISO/IEC 23001-7).

``CencEncryptor`` ('cenc', 10.1): AES-128 in CTR mode. Each sample starts a new counter
at its IV; the protected bytes of all its subsamples form one keystream. Per-sample IVs
follow the spec's recommendation (9.2): with 8-byte IVs the next sample's IV is the
previous one plus 1; with 16-byte IVs it is the previous one plus the number of AES
blocks the previous sample used. With 16-byte IVs and block-aligned subsamples the
counters of consecutive samples are contiguous, so a whole fragment is encrypted in a
single CTR call over the concatenated protected ranges (unaligned samples, i.e. audio,
are zero-padded to a block in that buffer); this is what makes Python fast here.

``CbcsEncryptor`` ('cbcs', 10.4): AES-128-CBC with a constant IV, reset at the start of
every subsample (10.4.2). Video uses the 1:9 pattern (one 16-byte block encrypted, nine
left clear, CBC chaining from one encrypted block to the next); a trailing partial block
is always clear. Audio uses whole-block full sample encryption (pattern 0:0).
Encrypted blocks are gathered and scattered with 16 strided slice copies per subsample
(C speed) instead of a Python loop per block.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from Crypto.Cipher import AES

from reelstream.media.package.boxes import SencEntry, Subsample

Map = tuple[Subsample, ...] | None  # None: the whole sample is protected


def protected_ranges(offset: int, size: int, subsamples: Map) -> list[tuple[int, int]]:
    """(start, length) of each protected range of a sample that starts at ``offset``."""
    if subsamples is None:
        return [(offset, size)] if size else []
    out, pos = [], offset
    for clear, protected in subsamples:
        pos += clear
        if protected:
            out.append((pos, protected))
        pos += protected
    if pos != offset + size:
        raise ValueError(f"subsample map covers {pos - offset} bytes of a {size}-byte sample")
    return out


class SampleEncryptor(ABC):
    """Encrypts the samples of a track, fragment after fragment (state carries over)."""

    scheme: bytes
    per_sample_iv_size: int
    constant_iv: bytes = b""
    crypt_byte_block: int = 0
    skip_byte_block: int = 0

    @abstractmethod
    def encrypt_fragment(self, mdat: bytearray, offsets: Sequence[int], sizes: Sequence[int],
                         maps: Sequence[Map]) -> list[SencEntry]:
        """Encrypt, in place, the samples of ``mdat`` (sample i is at ``offsets[i]`` and
        ``sizes[i]`` long); return their sample encryption entries."""


class CencEncryptor(SampleEncryptor):
    scheme = b"cenc"

    def __init__(self, key: bytes, iv: bytes) -> None:
        if len(iv) not in (8, 16):
            raise ValueError("a 'cenc' IV is 8 or 16 bytes (23001-7 9.1)")
        self.key = key
        self.per_sample_iv_size = len(iv)
        self._iv = int.from_bytes(iv, "big")
        self._ecb = AES.new(key, AES.MODE_ECB)

    def _ctr(self, iv: int) -> object:
        block = (iv << 64 if self.per_sample_iv_size == 8 else iv).to_bytes(16, "big")
        return AES.new(self.key, AES.MODE_CTR, nonce=block[:8], initial_value=block[8:])

    def encrypt_fragment(self, mdat: bytearray, offsets: Sequence[int], sizes: Sequence[int],
                         maps: Sequence[Map]) -> list[SencEntry]:
        ranges = [protected_ranges(o, s, m) for o, s, m in zip(offsets, sizes, maps, strict=True)]
        totals = [sum(n for _, n in r) for r in ranges]
        entries = []
        if self.per_sample_iv_size == 16 and self._fits_one_stream(totals):
            entries = self._encrypt_as_one_stream(mdat, ranges, totals)
        else:
            for r, total in zip(ranges, totals, strict=True):
                entries.append(SencEntry(self._iv.to_bytes(self.per_sample_iv_size, "big")))
                self._encrypt_sample(mdat, r)
                self._advance(total)
        for entry, m in zip(entries, maps, strict=True):
            entry.subsamples = m or ()
        return entries

    def _advance(self, total: int) -> None:
        step = 1 if self.per_sample_iv_size == 8 else -(-total // 16)
        self._iv = (self._iv + step) % (1 << (8 * self.per_sample_iv_size))

    def _fits_one_stream(self, totals: list[int]) -> bool:
        # One CTR stream only while the low 64 bits never wrap: CTR increments them alone,
        # the per-sample IV update is a 128-bit addition.
        blocks = sum(-(-t // 16) for t in totals)
        return (self._iv & ((1 << 64) - 1)) + blocks < (1 << 64)

    def _encrypt_sample(self, mdat: bytearray, ranges: list[tuple[int, int]]) -> None:
        if not ranges:
            return
        plain = b"".join(memoryview(mdat)[a:a + n] for a, n in ranges)
        cipher = self._ctr(self._iv).encrypt(plain)  # type: ignore[attr-defined]
        pos = 0
        for a, n in ranges:
            mdat[a:a + n] = cipher[pos:pos + n]
            pos += n

    def _encrypt_as_one_stream(self, mdat: bytearray, ranges: list[list[tuple[int, int]]],
                               totals: list[int]) -> list[SencEntry]:
        view = memoryview(mdat)
        pieces: list[bytes | memoryview] = []
        entries = []
        start_iv = self._iv
        for r, total in zip(ranges, totals, strict=True):
            entries.append(SencEntry(self._iv.to_bytes(16, "big")))
            pieces.extend(view[a:a + n] for a, n in r)
            if total % 16:
                pieces.append(bytes(16 - total % 16))  # keep the next sample block aligned
            self._advance(total)
        plain = b"".join(pieces)
        del view, pieces
        cipher = self._ctr(start_iv).encrypt(plain)  # type: ignore[attr-defined]
        pos = 0
        for r, total in zip(ranges, totals, strict=True):
            for a, n in r:
                mdat[a:a + n] = cipher[pos:pos + n]
                pos += n
            pos += -total % 16
        return entries


class CbcsEncryptor(SampleEncryptor):
    scheme = b"cbcs"
    per_sample_iv_size = 0

    def __init__(self, key: bytes, constant_iv: bytes, pattern: tuple[int, int] = (1, 9)) -> None:
        if len(constant_iv) != 16:
            raise ValueError("a 'cbcs' constant IV is 16 bytes (23001-7 10.4.1)")
        self.key = key
        self.constant_iv = constant_iv
        self.crypt_byte_block, self.skip_byte_block = pattern

    def encrypt_fragment(self, mdat: bytearray, offsets: Sequence[int], sizes: Sequence[int],
                         maps: Sequence[Map]) -> list[SencEntry]:
        entries = []
        for o, s, m in zip(offsets, sizes, maps, strict=True):
            for a, n in protected_ranges(o, s, m):
                self._encrypt_range(mdat, a, n)
            entries.append(SencEntry(b"", m or ()))
        return entries

    def _encrypt_range(self, mdat: bytearray, start: int, length: int) -> None:
        blocks = length // 16  # a partial last block stays clear (10.4.2)
        if blocks == 0:
            return
        cbc = AES.new(self.key, AES.MODE_CBC, iv=self.constant_iv)  # IV reset per subsample
        crypt, skip = self.crypt_byte_block, self.skip_byte_block
        if crypt == 0 or skip == 0:  # whole-block full sample encryption
            end = start + blocks * 16
            mdat[start:end] = cbc.encrypt(bytes(mdat[start:end]))
            return
        stride = 16 * (crypt + skip)
        # Encrypted groups start every ``stride`` bytes; a group needs ``crypt`` whole blocks.
        groups = (blocks - crypt) // (crypt + skip) + 1 if blocks >= crypt else 0
        if groups == 0:
            return
        width = 16 * crypt
        span = stride * (groups - 1) + width
        if crypt == 1:
            gathered = bytearray(16 * groups)
            for j in range(16):
                gathered[j::16] = mdat[start + j:start + span:stride]
            cipher = cbc.encrypt(bytes(gathered))
            for j in range(16):
                mdat[start + j:start + span:stride] = cipher[j::16]
            return
        plain = b"".join(bytes(mdat[start + g * stride:start + g * stride + width])
                         for g in range(groups))
        cipher = cbc.encrypt(plain)
        for g in range(groups):
            mdat[start + g * stride:start + g * stride + width] = cipher[g * width:(g + 1) * width]
