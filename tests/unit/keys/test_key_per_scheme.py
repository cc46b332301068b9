"""One content key per encryption scheme: a title packaged in 'cenc' (AES-CTR) and in
'cbcs' (AES-CBC) never uses one key under both modes (``reelstream.keys.model.key_slot``
has the reasons and the references)."""

from __future__ import annotations

import pytest

from reelstream.events.codec import EventCodec
from reelstream.events.model import Event
from reelstream.keys.kek import AesGcmKek
from reelstream.keys.model import key_slot, slot_parts
from reelstream.keys.service import KeyIdConflict, KeyService
from reelstream.media.encrypt.keys import InMemoryKeyProvider, MissingKey
from reelstream.stores.sqlite_state import SqliteStateStore
from tests.unit.keys.conftest import KEK_BYTES


def test_cenc_and_cbcs_keys_differ_and_stay_stable(service: KeyService, state: SqliteStateStore) -> None:
    cenc = service.keys_for("t1", ["AUDIO", "SD", "UHD"], scheme="cenc")
    cbcs = service.keys_for("t1", ["AUDIO", "SD", "UHD"], scheme="cbcs")
    for c in cenc:
        assert cenc[c].key != cbcs[c].key and cenc[c].kid != cbcs[c].kid, c
    again = KeyService(state, AesGcmKek(KEK_BYTES), lambda e: None, producer="x")
    assert again.keys_for("t1", ["SD", "AUDIO", "UHD"], scheme="cbcs") == cbcs
    assert again.keys_for("t1", ["SD", "AUDIO", "UHD"]) == cenc  # the default is 'cenc'
    assert again.key_ids("t1", "cbcs") == {c: k.kid for c, k in cbcs.items()}
    # the license server finds either by KID
    assert again.key_for_kid("t1", cbcs["SD"].kid) == cbcs["SD"]
    assert again.key_for_kid("t1", cenc["SD"].kid) == cenc["SD"]


def test_keys_stored_before_the_rule_are_the_cenc_keys() -> None:
    assert key_slot("HD", "cenc") == "HD" and key_slot("HD", "cbcs") == "HD:cbcs"
    assert slot_parts("HD") == ("HD", "cenc") and slot_parts("HD:cbcs") == ("HD", "cbcs")
    with pytest.raises(ValueError, match="unknown encryption scheme"):
        key_slot("HD", "aes")


def test_a_kid_is_never_reused_across_schemes(service: KeyService) -> None:
    kid = service.keys_for("t1", ["SD"], scheme="cenc")["SD"].kid
    with pytest.raises(KeyIdConflict):
        service.keys_for("t1", ["SD"], kids={"SD": kid}, scheme="cbcs")


def test_announced_events_list_both_schemes_key_ids_by_class(service: KeyService, published: list[Event]) -> None:
    cenc = service.keys_for("t1", ["SD"], scheme="cenc")
    cbcs = service.keys_for("t1", ["SD"], scheme="cbcs")
    last = published[-1]
    EventCodec().encode(last, "reel.keys")  # still valid against ContentKeysCreated v1
    assert sorted((k["key_class"], k["key_id"]) for k in last["keys"]) == sorted(
        [("SD", cenc["SD"].kid), ("SD", cbcs["SD"].kid)])


def test_in_memory_provider_keeps_schemes_apart() -> None:
    provider = InMemoryKeyProvider(generate=True)
    assert provider.keys_for("t1", ["SD"], scheme="cbcs") != provider.keys_for("t1", ["SD"], scheme="cenc")
    given = InMemoryKeyProvider({"t1": {"SD": provider.keys_for("t1", ["SD"])["SD"]}})
    with pytest.raises(MissingKey, match="SD \\(cbcs\\)"):
        given.keys_for("t1", ["SD"], scheme="cbcs")
