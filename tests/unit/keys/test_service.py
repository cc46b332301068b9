"""KeyService against the real SQLite state store: one key per class, wrapped at rest,
announced once with key ids only."""

from __future__ import annotations

import base64

import pytest

from reelstream.events.codec import EventCodec
from reelstream.events.model import Event
from reelstream.keys.kek import AesGcmKek, KeyUnwrapFailed
from reelstream.keys.model import ContentKey, video_key_class
from reelstream.keys.service import CONTENT_KEYS, KeyIdConflict, KeyService, UnknownKey
from reelstream.stores.sqlite_state import SqliteStateStore


def test_separate_random_keys_per_class(service: KeyService) -> None:
    keys = service.keys_for("t1", ["AUDIO", "SD", "HD", "UHD"])
    assert list(keys) == ["AUDIO", "SD", "HD", "UHD"]
    assert len({k.kid for k in keys.values()}) == 4
    assert len({k.key for k in keys.values()}) == 4
    other = service.keys_for("t2", ["SD"])
    assert other["SD"].key != keys["SD"].key and other["SD"].kid != keys["SD"].kid


def test_same_keys_on_every_later_call(service: KeyService, state: SqliteStateStore) -> None:
    first = service.keys_for("t1", ["SD", "HD"])
    again = KeyService(state, AesGcmKek(bytes(range(32))), lambda e: None, producer="x").keys_for("t1", ["HD", "SD"])
    assert again == first


def test_rows_hold_only_wrapped_keys(service: KeyService, state: SqliteStateStore) -> None:
    keys = service.keys_for("t1", ["AUDIO", "SD"])
    rows = state.query(CONTENT_KEYS, ("t1",))
    assert {r.values["key_class"] for r in rows} == {"AUDIO", "SD"}
    dumped = repr([r.values for r in rows]).encode()
    for key in keys.values():
        for form in (key.key, key.key.hex().encode(), base64.b64encode(key.key)):
            assert form not in dumped


def test_announces_key_ids_once(service: KeyService, published: list[Event]) -> None:
    keys = service.keys_for("t1", ["SD", "AUDIO"])
    service.keys_for("t1", ["SD", "AUDIO"])
    assert len(published) == 1
    event = published[0]
    assert event.type == "ContentKeysCreated"
    assert event["key_provider"] == "reelstream"
    assert event["keys"] == [{"key_id": keys["AUDIO"].kid, "key_class": "AUDIO"},
                             {"key_id": keys["SD"].kid, "key_class": "SD"}]
    EventCodec().encode(event, "reel.keys")  # valid against the Avro contract
    service.keys_for("t1", ["HD"])
    assert [k["key_class"] for k in published[1]["keys"]] == ["AUDIO", "SD", "HD"]


def test_failed_publish_is_retried_on_the_next_call(state: SqliteStateStore) -> None:
    sent: list[Event] = []

    def flaky(event: Event) -> None:  # fault injection: the log is down once
        if not sent and not getattr(flaky, "failed", False):
            flaky.failed = True  # type: ignore[attr-defined]
            raise ConnectionError("log down")
        sent.append(event)

    service = KeyService(state, AesGcmKek(bytes(range(32))), flaky, producer="t")
    with pytest.raises(ConnectionError):
        service.keys_for("t1", ["SD"])
    keys = service.keys_for("t1", ["SD"])
    assert [k["key_id"] for k in sent[0]["keys"]] == [keys["SD"].kid]


def test_requested_kids_are_used_and_then_enforced(service: KeyService) -> None:
    kid = "98ee5596-cd3e-a20d-163a-e382420c6eff"
    keys = service.keys_for("t1", ["SD"], kids={"SD": kid})
    assert keys["SD"].kid == "98ee5596cd3ea20d163ae382420c6eff"
    assert service.keys_for("t1", ["SD"], kids={"SD": kid}) == keys
    with pytest.raises(KeyIdConflict, match="already has id"):
        service.keys_for("t1", ["SD"], kids={"SD": "0" * 32})
    with pytest.raises(KeyIdConflict, match="already protects SD"):
        service.keys_for("t1", ["HD"], kids={"HD": kid})


def test_key_for_kid(service: KeyService) -> None:
    keys = service.keys_for("t1", ["SD", "HD"])
    assert service.key_for_kid("t1", keys["HD"].kid) == keys["HD"]
    with pytest.raises(UnknownKey):
        service.key_for_kid("t2", keys["HD"].kid)


def test_wrong_kek_cannot_read_keys(service: KeyService, state: SqliteStateStore) -> None:
    service.keys_for("t1", ["SD"])
    with pytest.raises(KeyUnwrapFailed):
        KeyService(state, AesGcmKek(bytes(32)), lambda e: None, producer="x").keys_for("t1", ["SD"])


def test_unknown_class_is_refused(service: KeyService) -> None:
    with pytest.raises(ValueError, match="unknown key class"):
        service.keys_for("t1", ["HDR"])  # type: ignore[list-item]


def test_content_key_repr_hides_the_key() -> None:
    key = ContentKey("0" * 32, bytes.fromhex("00112233445566778899aabbccddeeff"))
    assert "00112233" not in repr(key) and "redacted" in str(key)


@pytest.mark.parametrize("size, key_class", [
    ((640, 360), "SD"), ((1024, 576), "SD"), ((1280, 720), "HD"), ((1920, 1080), "HD"),
    ((2560, 1440), "UHD"), ((3840, 2160), "UHD")])
def test_video_key_class_follows_speke_preset_video_3(size: tuple[int, int], key_class: str) -> None:
    assert video_key_class(*size) == key_class


def test_a_kek_that_did_not_wrap_the_stored_keys_is_refused_at_start(state: SqliteStateStore) -> None:
    # A second `reel up` data dir on the same servers made a new KEK: it started, and every
    # license failed with "a backing service failed; retry shortly".
    from reelstream.keys.service import KekMismatch

    right, wrong = AesGcmKek(bytes(range(32))), AesGcmKek(bytes(32))
    KeyService(state, wrong, lambda e: None, producer="x").check_kek()  # no keys yet: any KEK will do
    KeyService(state, right, lambda e: None, producer="x").keys_for("t1", ["SD"])
    KeyService(state, right, lambda e: None, producer="x").check_kek()
    with pytest.raises(KekMismatch, match=f"REEL_KEK is key-encryption key {wrong.kek_id}, but the stored content "
                                          f"keys were wrapped by {right.kek_id} \\(title t1\\)"):
        KeyService(state, wrong, lambda e: None, producer="x").check_kek()
    assert not KeyUnwrapFailed("x").transient, "a retry fails alike: the license gateway must not say 'retry shortly'"
