"""The key service: one content key per title, key class and encryption scheme
(``model.key_slot`` says why per scheme), generated with a CSPRNG,
stored wrapped by the KEK in the ``content_keys`` view, announced by id only.

It is ReelStream's own key provider (``keys_for``) and the store behind the SPEKE
endpoint. Rows hold only wrapped keys; ``ContentKeysCreated`` carries only key ids.
"""

from __future__ import annotations

import base64
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping

from reelstream.errors import ConfigError, ReelStreamError
from reelstream.events.model import Event, new_event
from reelstream.keys.kek import KeyEncryptionKey
from reelstream.keys.model import (
    KEY_CLASSES,
    LEGACY_SCHEME,
    ContentKey,
    KeyClass,
    check_kid,
    key_slot,
    slot_parts,
)
from reelstream.stores.ports import Column, Row, StateStore, ViewSpec

# Partition key: title_id; one row per key class and scheme ("HD" for 'cenc', "HD:cbcs" for
# 'cbcs': ``key_slot``). Only wrapped keys, never key bytes.
CONTENT_KEYS = ViewSpec(
    name="content_keys", partition_key=("title_id",), clustering_key=("key_class",),
    columns={"title_id": Column.TEXT, "key_class": Column.TEXT, "key_id": Column.TEXT,
             "wrapped_key": Column.TEXT, "kek_id": Column.TEXT, "created_ms": Column.BIGINT,
             "announced": Column.BOOLEAN},
    query="the wrapped content keys of a title, one per key class",
)

PROVIDER_NAME = "reelstream"


class KeyIdConflict(ReelStreamError):
    """A caller asked for a key id that differs from the one a title already has for that
    class (SPEKE: the encryptor must reuse a content id's KIDs), or reused one KID for two classes."""


class KekMismatch(ConfigError):
    """The configured KEK is not the one that wrapped the stored content keys: every
    license and every package of an existing title would fail."""


class UnknownKey(ReelStreamError):
    """No content key with that id exists for that title."""


class KeyService:
    """Creates and serves content keys. Thread-safe within a process.

    ``publish`` appends an event (``Runtime.publish``). Creating keys for one title from
    two processes at once is not serialized (the StateStore has no compare-and-set): run
    one key service per deployment, as the gateway does.
    """

    def __init__(self, state: StateStore, kek: KeyEncryptionKey, publish: Callable[[Event], None], *,
                 producer: str, random_bytes: Callable[[int], bytes] = secrets.token_bytes,
                 clock_ms: Callable[[], int] = lambda: int(time.time() * 1000)) -> None:
        self._state = state
        self._kek = kek
        self._publish = publish
        self._producer = producer
        self._random = random_bytes
        self._clock_ms = clock_ms
        self._lock = threading.Lock()
        state.ensure_views([CONTENT_KEYS])

    # ------------------------------------------------------------------ provider interface

    def keys_for(self, title_id: str, classes: Iterable[KeyClass],
                 kids: Mapping[KeyClass, str] | None = None,
                 scheme: str = LEGACY_SCHEME) -> dict[KeyClass, ContentKey]:
        """The title's key per class for ``scheme``, creating missing ones (with ``kids``
        when given, as a SPEKE encryptor chooses its KIDs; otherwise random KIDs). Two
        schemes never share a key or a KID."""
        wanted = _check_classes(classes)
        requested = {c: check_kid(k) for c, k in (kids or {}).items()}
        with self._lock:
            rows = self._rows(title_id)
            result: dict[KeyClass, ContentKey] = {}
            for key_class in wanted:
                slot = key_slot(key_class, scheme)
                row = rows.get(slot)
                if row is None:
                    row = self._create(title_id, slot, requested.get(key_class), rows)
                    rows[slot] = row
                key = self._unwrap(row)
                if key_class in requested and requested[key_class] != key.kid:
                    raise KeyIdConflict(
                        f"title {title_id}: the {key_class} key already has id {key.kid}, "
                        f"not {requested[key_class]}")
                result[key_class] = key
            self._announce(title_id, rows)
            return result

    def key_for_kid(self, title_id: str, kid: str) -> ContentKey:
        """The title's content key with id ``kid`` (for the license server)."""
        wanted = check_kid(kid)
        for row in self._rows(title_id).values():
            if row.values["key_id"] == wanted:
                return self._unwrap(row)
        raise UnknownKey(f"title {title_id} has no content key with id {wanted}")

    def check_kek(self) -> None:
        """Refuse a KEK other than the one that wrapped the stored keys (one row is read:
        there is one KEK per deployment). Without this a wrong ``REEL_KEK`` surfaces only as
        failed licenses, long after start."""
        row = next(iter(self._state.scan(CONTENT_KEYS)), None)
        if row is not None and row.values["kek_id"] != self._kek.kek_id:
            raise KekMismatch(
                f"REEL_KEK is key-encryption key {self._kek.kek_id}, but the stored content keys were wrapped "
                f"by {row.values['kek_id']} (title {row.values['title_id']}): no license or package could "
                f"use them. Set REEL_KEK to this deployment's KEK (`reel up` keeps it in DATA_DIR/secrets.json; "
                f"run again with the data dir that first started it, or export its REEL_KEK)")

    def key_ids(self, title_id: str, scheme: str = LEGACY_SCHEME) -> dict[KeyClass, str]:
        out: dict[KeyClass, str] = {}
        for slot, row in self._rows(title_id).items():
            key_class, row_scheme = slot_parts(slot)
            if row_scheme == scheme:
                out[key_class] = row.values["key_id"]
        return out

    # ------------------------------------------------------------------ internals

    def _rows(self, title_id: str) -> dict[str, Row]:
        """The title's rows by key slot."""
        return {r.values["key_class"]: r for r in self._state.query(CONTENT_KEYS, (title_id,))}

    def _create(self, title_id: str, key_class: str, kid: str | None,
                rows: Mapping[str, Row]) -> Row:
        kid = kid or self._random(16).hex()
        taken = {r.values["key_id"]: c for c, r in rows.items()}
        if kid in taken:
            raise KeyIdConflict(f"title {title_id}: key id {kid} already protects {taken[kid]}")
        key = self._random(16)
        wrapped = self._kek.wrap(key, _context(title_id, key_class, kid))
        row = Row({"title_id": title_id, "key_class": key_class, "key_id": kid,
                   "wrapped_key": base64.b64encode(wrapped).decode(), "kek_id": self._kek.kek_id,
                   "created_ms": self._clock_ms(), "announced": False})
        self._state.put(CONTENT_KEYS, row)
        return row

    def _unwrap(self, row: Row) -> ContentKey:
        v = row.values
        key = self._kek.unwrap(base64.b64decode(v["wrapped_key"]), _context(v["title_id"], v["key_class"], v["key_id"]))
        return ContentKey(v["key_id"], key)

    def _announce(self, title_id: str, rows: dict[str, Row]) -> None:
        """Publish ContentKeysCreated (every key id of the title) when a key is new, then mark
        the rows: a crash between the two re-announces on the next call, never loses it.
        The event's KeyRef has no scheme field (schema v1): a title packaged in two schemes
        lists two key ids per class."""
        if all(r.values.get("announced") for r in rows.values()):
            return
        ordered = sorted(rows.values(), key=lambda r: (KEY_CLASSES.index(slot_parts(r.values["key_class"])[0]),
                                                       r.values["key_class"]))
        self._publish(new_event("ContentKeysCreated", {
            "title_id": title_id,
            "keys": [{"key_id": r.values["key_id"], "key_class": slot_parts(r.values["key_class"])[0]}
                     for r in ordered],
            "key_provider": PROVIDER_NAME,
        }, producer=self._producer, correlation_id=title_id))
        for key_class, row in rows.items():
            if not row.values.get("announced"):
                rows[key_class] = Row({**row.values, "announced": True}, row.applied)
                self._state.put(CONTENT_KEYS, rows[key_class])


def _check_classes(classes: Iterable[KeyClass]) -> list[KeyClass]:
    wanted = list(dict.fromkeys(classes))
    unknown = [c for c in wanted if c not in KEY_CLASSES]
    if unknown:
        raise ValueError(f"unknown key class(es) {unknown}; known: {', '.join(KEY_CLASSES)}")
    return wanted


def _context(title_id: str, key_class: str, kid: str) -> bytes:
    return f"{title_id}/{key_class}/{kid}".encode()
