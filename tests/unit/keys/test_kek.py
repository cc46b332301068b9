"""The KEK adapter and its setting: wrap/unwrap, binding to the row, start-time errors."""

from __future__ import annotations

import base64

import pytest

from reelstream.errors import ConfigError
from reelstream.keys.kek import AesGcmKek, KeyUnwrapFailed, kek_from_setting

KEK = bytes(range(32))


def test_wrap_round_trips_and_hides_the_key() -> None:
    kek = AesGcmKek(KEK)
    key = bytes.fromhex("00112233445566778899aabbccddeeff")
    wrapped = kek.wrap(key, b"t1/SD/aa")
    assert key not in wrapped
    assert len(wrapped) == 1 + 12 + 16 + 16
    assert kek.unwrap(wrapped, b"t1/SD/aa") == key


def test_wrapped_key_moved_to_another_row_does_not_unwrap() -> None:
    kek = AesGcmKek(KEK)
    wrapped = kek.wrap(b"k" * 16, b"t1/SD/aa")
    with pytest.raises(KeyUnwrapFailed, match="t2/SD/aa"):
        kek.unwrap(wrapped, b"t2/SD/aa")


def test_wrong_kek_fails_with_its_id() -> None:
    wrapped = AesGcmKek(KEK).wrap(b"k" * 16, b"ctx")
    other = AesGcmKek(bytes(32))
    with pytest.raises(KeyUnwrapFailed, match=other.kek_id):
        other.unwrap(wrapped, b"ctx")


def test_kek_id_and_repr_never_show_the_kek() -> None:
    kek = AesGcmKek(KEK)
    assert KEK.hex() not in kek.kek_id and KEK.hex() not in repr(kek)
    assert base64.b64encode(KEK).decode() not in repr(kek)


@pytest.mark.parametrize("value, reason", [
    (None, "REEL_KEK is not set"),
    ("", "REEL_KEK is not set"),
    ("not base64!", "REEL_KEK is not valid base64"),
    (base64.b64encode(b"short").decode(), "REEL_KEK decodes to 5 bytes; it must be 32"),
])
def test_bad_setting_names_reel_kek(value: str | None, reason: str) -> None:
    with pytest.raises(ConfigError, match=reason):
        kek_from_setting(value)


def test_good_setting() -> None:
    kek = kek_from_setting(base64.b64encode(KEK).decode())
    assert kek.unwrap(kek.wrap(b"x" * 16, b"c"), b"c") == b"x" * 16
