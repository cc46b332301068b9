"""The event contract: every schema is documented, versioned and backward compatible."""

from __future__ import annotations

import io
import json
from pathlib import Path

import fastavro
import pytest

from reelstream.events.registry import SchemaRegistry, crc64_avro, default_registry
from tests.support.avro_samples import sample

REQUIRED = ["TitleRegistered", "MezzanineUploaded", "IngestValidated", "IngestRejected", "ChunkTranscodeRequested", "ChunkTranscoded", "ChunkFailed", "RenditionCompleted", "TitlePackaged", "TitlePublished", "ContentKeysCreated", "EntitlementGranted", "EntitlementRevoked", "LicenseGranted", "LicenseDenied", "PlaybackStarted", "PlaybackHeartbeat", "PlaybackPaused", "PlaybackStopped", "DownloadLicensed", "DownloadReturned", "DeadLetter"]
LOCK = Path(__file__).parents[2] / "golden" / "schema_fingerprints.json"
registry = default_registry()


def test_every_required_event_type_has_a_schema() -> None:
    assert set(REQUIRED) <= set(registry.event_types)


@pytest.mark.parametrize("event_type", REQUIRED)
def test_every_field_is_documented_and_the_envelope_is_first(event_type: str) -> None:
    raw = registry.current(event_type).raw
    assert raw["doc"]
    assert raw["fields"][0] == {"name": "header", "type": "reelstream.events.EventHeader",
                                "doc": "Envelope shared by every ReelStream event."}

    def undocumented(schema: object, path: str) -> list[str]:
        if isinstance(schema, list):
            return [m for s in schema for m in undocumented(s, path)]
        if not isinstance(schema, dict):
            return []
        missing = []
        for f in schema.get("fields", []):
            if not f.get("doc"):
                missing.append(f"{path}.{f['name']}")
            missing += undocumented(f["type"], f"{path}.{f['name']}")
        return missing + undocumented(schema.get("items"), path)

    assert undocumented(raw, event_type) == []


def _versions() -> list[tuple[str, int]]:
    return [(t, v.version) for t in registry.event_types for v in registry.versions(t)]


@pytest.mark.parametrize(("event_type", "version"), _versions())
def test_current_schema_reads_data_written_with_every_kept_version(event_type: str, version: int) -> None:
    writer = next(v for v in registry.versions(event_type) if v.version == version)
    reader = registry.current(event_type)
    datum = sample(writer.resolved)
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, writer.parsed, datum)
    buf.seek(0)
    decoded = fastavro.schemaless_reader(buf, writer.parsed, reader.parsed)
    for name in datum:
        assert name in decoded  # no field of an older version is lost


def test_versions_increase_and_history_holds_only_earlier_ones() -> None:
    for event_type in registry.event_types:
        numbers = [v.version for v in registry.versions(event_type)]
        assert numbers == sorted(set(numbers)), event_type
        assert registry.current(event_type).version == numbers[-1]


def test_no_kept_version_changes_in_place() -> None:
    """A schema edited without bumping its version would make old fingerprints unreadable.

    To change a schema: copy the current file into history/ as ``<name>.v<N>.avsc``, bump
    ``reelstream.version`` in the current one, and add the new fingerprint to the lock file.
    """
    locked = json.loads(LOCK.read_text())
    present = {f"{t} v{v.version}": v.fingerprint.hex() for t in registry.event_types for v in registry.versions(t)}
    changed = {k: v for k, v in present.items() if k in locked and locked[k] != v}
    assert changed == {}
    assert set(locked) <= set(present), "a kept schema version was deleted"
    assert set(present) <= set(locked), f"new versions not in {LOCK.name}: {sorted(set(present) - set(locked))}"


def test_crc64_avro_matches_the_specifications_reference() -> None:
    # Avro spec: the fingerprint of the canonical form of "null" is 0x63dd24e7cc258f8a.
    assert crc64_avro(b'"null"') == 0x63DD24E7CC258F8A
    for event_type in registry.event_types:
        v = registry.current(event_type)
        assert v.fingerprint.hex() == fastavro.schema.fingerprint(v.canonical, "CRC-64-AVRO")


def test_a_broken_schema_directory_gives_a_clear_error(tmp_path: Path) -> None:
    from reelstream.errors import SchemaError

    with pytest.raises(SchemaError, match="EventHeader.avsc is missing"):
        SchemaRegistry.load(tmp_path)
