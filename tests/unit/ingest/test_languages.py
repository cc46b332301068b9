"""ISO 639-2 codes to the ISO 639-1 primary language the metadata's BCP 47 tags use."""

from __future__ import annotations

from reelstream.ingest.languages import primary


def test_every_iso_639_1_language_has_its_639_2_codes() -> None:
    assert [primary(c) for c in ("fas", "per", "slk", "slo", "bod", "tib", "cym", "wel", "tgl", "swa")] == [
        "fa", "fa", "sk", "sk", "bo", "bo", "cy", "cy", "tl", "sw"]
    assert primary("yue") == "yue" and primary("zxx") is None  # no 639-1 code: kept; no language: none
