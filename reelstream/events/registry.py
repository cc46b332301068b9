"""The event schemas on disk (``events/schemas/``), loaded and fingerprinted.

Every ``*.avsc`` at the top level is the current version of one event type; earlier
versions live in ``history/`` as ``<full name>.v<N>.avsc``. The shared
``EventHeader`` record is referenced by name and inlined here before parsing, so
every parsed schema is self-contained and its fingerprint is that of the full
writer schema (Avro spec, "Schema Fingerprints").
"""

from __future__ import annotations

import copy
import json
import os
import struct
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import to_parsing_canonical_form

from reelstream.errors import SchemaError

NAMESPACE = "reelstream.events"
HEADER = f"{NAMESPACE}.EventHeader"
VERSION_PROPERTY = "reelstream.version"


def schema_dir() -> Path:
    """Where the schemas are read from: ``$REEL_SCHEMA_DIR`` or the copy packaged with ReelStream."""
    override = os.environ.get("REEL_SCHEMA_DIR")
    return Path(override) if override else Path(__file__).with_name("schemas")


def _crc64_table() -> list[int]:
    empty = 0xC15D213AA4D7A795
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (empty & -(fp & 1))
        table.append(fp & 0xFFFFFFFFFFFFFFFF)
    return table


_CRC64_TABLE = _crc64_table()


def crc64_avro(data: bytes) -> int:
    """CRC-64-AVRO (Rabin) fingerprint, exactly as the Avro specification's reference code."""
    fp = 0xC15D213AA4D7A795
    for byte in data:
        fp = (fp >> 8) ^ _CRC64_TABLE[(fp ^ byte) & 0xFF]
    return fp


@dataclass(frozen=True)
class SchemaVersion:
    """One version of one event type's schema."""

    event_type: str  # short name, e.g. "TitleRegistered"
    version: int
    raw: dict[str, Any] = field(repr=False)  # the file's JSON
    resolved: dict[str, Any] = field(repr=False)  # with EventHeader inlined
    parsed: Any = field(repr=False)
    canonical: str = field(repr=False)
    fingerprint: bytes = field(repr=False)  # 8 bytes, little-endian, as single-object encoding writes it

    @cached_property
    def field_names(self) -> frozenset[str]:
        return frozenset(f["name"] for f in self.raw["fields"]) - {"header"}

    @property
    def full_name(self) -> str:
        return f"{NAMESPACE}.{self.event_type}"


def _inline_header(raw: dict[str, Any], header: dict[str, Any]) -> dict[str, Any]:
    raw = copy.deepcopy(raw)
    for fld in raw.get("fields", []):
        if fld.get("type") == HEADER:
            fld["type"] = copy.deepcopy(header)
    return raw


def _build(raw: dict[str, Any], header: dict[str, Any], source: Path) -> SchemaVersion:
    name = raw.get("name")
    version = raw.get(VERSION_PROPERTY)
    if not isinstance(name, str) or not isinstance(version, int):
        raise SchemaError(f"{source}: needs a 'name' and an integer '{VERSION_PROPERTY}'")
    full = _inline_header(raw, header)
    try:
        parsed = fastavro.parse_schema(full, named_schemas={})
    except Exception as e:  # fastavro raises several unrelated types here
        raise SchemaError(f"{source}: not a valid Avro schema: {e}") from e
    canonical = to_parsing_canonical_form(parsed)
    fingerprint = struct.pack("<Q", crc64_avro(canonical.encode()))
    return SchemaVersion(name, version, raw, full, parsed, canonical, fingerprint)


class SchemaRegistry:
    """Every schema version kept in the repository, by event type and by fingerprint."""

    def __init__(self, versions: list[SchemaVersion]) -> None:
        self._by_type: dict[str, list[SchemaVersion]] = {}
        self._by_fingerprint: dict[bytes, SchemaVersion] = {}
        for v in sorted(versions, key=lambda v: (v.event_type, v.version)):
            self._by_type.setdefault(v.event_type, []).append(v)
            self._by_fingerprint[v.fingerprint] = v

    @classmethod
    def load(cls, directory: Path | None = None) -> SchemaRegistry:
        directory = directory or schema_dir()
        header_path = directory / f"{HEADER}.avsc"
        if not header_path.is_file():
            raise SchemaError(f"{header_path} is missing: is REEL_SCHEMA_DIR pointing at events/schemas?")
        header = json.loads(header_path.read_text())
        versions = []
        paths = sorted(directory.glob("*.avsc")) + sorted((directory / "history").glob("*.avsc"))
        for path in paths:
            if path == header_path:
                continue
            try:
                raw = json.loads(path.read_text())
            except json.JSONDecodeError as e:
                raise SchemaError(f"{path}: invalid JSON: {e}") from e
            versions.append(_build(raw, header, path))
        return cls(versions)

    @property
    def event_types(self) -> list[str]:
        return sorted(self._by_type)

    def current(self, event_type: str) -> SchemaVersion:
        try:
            return self._by_type[event_type][-1]
        except KeyError:
            raise SchemaError(f"unknown event type '{event_type}'; known: {', '.join(self.event_types)}") from None

    def versions(self, event_type: str) -> list[SchemaVersion]:
        self.current(event_type)
        return list(self._by_type[event_type])

    def by_fingerprint(self, fingerprint: bytes) -> SchemaVersion | None:
        return self._by_fingerprint.get(fingerprint)


@cache
def default_registry() -> SchemaRegistry:
    return SchemaRegistry.load()
