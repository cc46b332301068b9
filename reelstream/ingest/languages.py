"""Language tags: metadata speaks BCP 47 ('en', 'fr-CA'); MP4 and Matroska store ISO 639-2 ('eng', 'fre')."""

from __future__ import annotations

# ISO 639-2 (bibliographic and terminology codes) -> ISO 639-1, for the languages a studio delivers.
_ISO639_2 = {
    "eng": "en", "fra": "fr", "fre": "fr", "deu": "de", "ger": "de", "spa": "es", "ita": "it", "por": "pt",
    "nld": "nl", "dut": "nl", "swe": "sv", "nor": "no", "nob": "nb", "dan": "da", "fin": "fi", "pol": "pl",
    "ces": "cs", "cze": "cs", "hun": "hu", "ron": "ro", "rum": "ro", "ell": "el", "gre": "el", "tur": "tr",
    "rus": "ru", "ukr": "uk", "ara": "ar", "heb": "he", "hin": "hi", "jpn": "ja", "kor": "ko", "zho": "zh",
    "chi": "zh", "tha": "th", "vie": "vi", "ind": "id", "msa": "ms", "may": "ms", "cat": "ca", "eus": "eu",
}


def primary(tag: str | None) -> str | None:
    """The ISO 639-1 primary language of a BCP 47 or ISO 639-2 tag; None for unknown/undetermined."""
    if not tag:
        return None
    first = tag.replace("_", "-").split("-")[0].lower()
    if first in ("und", "mul", "zxx", "mis"):
        return None
    if len(first) == 3:
        return _ISO639_2.get(first, first)
    return first


def is_tag(tag: object) -> bool:
    if not isinstance(tag, str) or not tag:
        return False
    parts = tag.split("-")
    return parts[0].isalpha() and 2 <= len(parts[0]) <= 3 and all(p.isalnum() and 1 <= len(p) <= 8 for p in parts)
