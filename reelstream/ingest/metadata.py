"""The title's metadata document (``title.json``), checked field by field.

Every problem becomes a METADATA_INVALID reason naming the field, e.g.
``license_terms.window_end``; checking goes on after the first, so the studio gets the
whole list at once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from reelstream.ingest.languages import is_tag
from reelstream.ingest.ratings import rating_problem
from reelstream.ingest.reasons import Reason
from reelstream.jsontext import LONE_SURROGATE_HINT, lone_surrogate_at

_TITLE_ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")  # fullmatch: '$' would let a trailing newline in
_ID_RULE = "lowercase letters, digits, '.', '_' or '-', starting with a letter or digit, at most 64 characters"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class SidecarSpec:
    file: str
    language: str
    kind: str  # "subtitle" | "audio"
    sdh: bool = False
    forced: bool = False
    audio_description: bool = False


@dataclass(frozen=True)
class TitleMetadata:
    title_id: str
    title: str
    original_language: str
    audio_languages: list[str]
    rating: dict[str, str]
    license_terms: dict[str, Any]
    genres: list[str]
    master_sha256: str | None
    master_size: int | None
    expected_duration_s: float | None
    subtitles: list[SidecarSpec] = field(default_factory=list)
    audio: list[SidecarSpec] = field(default_factory=list)
    series: dict[str, Any] | None = None  # {"series_id", "series_title", "season", "episode"} for an episode
    end_credits_start_ms: int | None = None

    def registered_data(self) -> dict[str, Any]:
        """The TitleRegistered payload."""
        return {"title_id": self.title_id, "title": self.title, "original_language": self.original_language,
                "audio_languages": self.audio_languages, "rating": self.rating,
                "license_terms": self.license_terms, "genres": self.genres, "series": self.series,
                "end_credits_start_ms": self.end_credits_start_ms}


class _Checker:
    def __init__(self, doc: Mapping[str, Any]) -> None:
        self.doc = doc
        self.reasons: list[Reason] = []

    def bad(self, name: str, message: str) -> None:
        self.reasons.append(Reason("METADATA_INVALID", name, message))

    def text(self, container: Mapping[str, Any], key: str, path: str) -> str:
        value = container.get(key)
        if not isinstance(value, str) or not value.strip():
            self.bad(path, "is required and must be a non-empty string")
            return ""
        return value

    def language(self, container: Mapping[str, Any], key: str, path: str) -> str:
        value = container.get(key)
        if not is_tag(value):
            self.bad(path, f"must be a BCP 47 language tag like 'en' or 'fr-CA', not {value!r}")
            return ""
        return str(value)

    def moment(self, value: Any, path: str, required: bool) -> datetime | None:
        if value is None:
            if required:
                self.bad(path, "is required (ISO 8601, e.g. '2026-01-01T00:00:00Z')")
            return None
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError:
            self.bad(path, f"must be an ISO 8601 date-time, not {value!r}")
            return None
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def id_problem(value: Any) -> str | None:
    """What is wrong with a title or series id, None when it is usable. An id names object keys
    and URLs, so the message says which character or rule it breaks and suggests a usable one."""
    if value is None:
        return f"is required: {_ID_RULE}"
    if not isinstance(value, str):
        return f"must be a string of {_ID_RULE}, not {value!r}"
    if _TITLE_ID.fullmatch(value):
        return None
    if not value:
        return f"is empty: give one of {_ID_RULE}"
    bad = sorted({ch for ch in value if not re.fullmatch(r"[a-z0-9._-]", ch)})
    if bad:
        problem = f"{value!r} contains {', '.join(map(repr, bad))}, which an id may not"
    elif len(value) > 64:
        problem = f"{value!r} is {len(value)} characters long"
    else:
        problem = f"{value!r} starts with {value[0]!r}"
    suggestion = re.sub(r"\s+", "-", value.strip().lower())  # the usual slip: 'My Film' for 'my-film'
    hint = f" (e.g. {suggestion!r})" if _TITLE_ID.fullmatch(suggestion) else ""
    return f"{problem}: use {_ID_RULE}{hint}"


def parse_metadata(doc: Any) -> tuple[TitleMetadata | None, list[Reason]]:
    """The metadata and every problem found; None when the title id itself is unusable."""
    if not isinstance(doc, Mapping):
        return None, [Reason("METADATA_INVALID", None, "the metadata must be a JSON object")]
    if (where := lone_surrogate_at(dict(doc))) is not None:  # it would fail in the event log
        return None, [Reason("METADATA_INVALID", None, f"the metadata's {where} {LONE_SURROGATE_HINT}")]
    c = _Checker(doc)
    title_id = doc.get("title_id")
    if (problem := id_problem(title_id)) is not None:
        c.bad("title_id", problem)
        title_id = ""
    title = c.text(doc, "title", "title")
    original = c.language(doc, "original_language", "original_language")
    languages = doc.get("audio_languages")
    if not isinstance(languages, list) or not languages or not all(is_tag(x) for x in languages):
        c.bad("audio_languages", "must be a non-empty list of BCP 47 tags")
        languages = []
    elif original and original not in languages:
        c.bad("audio_languages", f"must include the original language {original!r}")
    rating = doc.get("rating") if isinstance(doc.get("rating"), Mapping) else {}
    if not rating:
        c.bad("rating", "is required: {\"system\": \"MPAA\", \"value\": \"PG-13\"}")
    system, value = (c.text(rating, "system", "rating.system"), c.text(rating, "value", "rating.value")) \
        if rating else ("", "")
    if system and value and (wrong := rating_problem(system, value)) is not None:
        c.bad(*wrong)
    terms = _license_terms(c, doc.get("license_terms"))
    genres = doc.get("genres", [])
    if not isinstance(genres, list) or not all(isinstance(g, str) for g in genres):
        c.bad("genres", "must be a list of strings")
        genres = []
    master = doc.get("master") or {}
    sha = master.get("sha256") if isinstance(master, Mapping) else None
    if sha is not None and (not isinstance(sha, str) or not _SHA256.match(sha.lower())):
        c.bad("master.sha256", "must be 64 hexadecimal characters")
        sha = None
    size = master.get("size_bytes") if isinstance(master, Mapping) else None
    if size is not None and (not isinstance(size, int) or size <= 0):
        c.bad("master.size_bytes", "must be a positive integer")
        size = None
    duration = doc.get("expected_duration_s")
    if duration is not None and (not isinstance(duration, (int, float)) or duration <= 0):
        c.bad("expected_duration_s", "must be a positive number of seconds")
        duration = None
    subtitles = _sidecars(c, doc.get("subtitles", []), "subtitles", "subtitle")
    audio = _sidecars(c, doc.get("audio", []), "audio", "audio")
    series = _series(c, doc.get("series"))
    credits = doc.get("end_credits_start_ms")
    if credits is not None and (isinstance(credits, bool) or not isinstance(credits, int) or credits <= 0):
        c.bad("end_credits_start_ms", "must be a positive integer: where the end credits start, in ms")
        credits = None
    if not title_id:
        return None, c.reasons
    meta = TitleMetadata(title_id, title, original, [str(x) for x in languages], {"system": system, "value": value},
                         terms, [str(g) for g in genres], sha.lower() if sha else None, size,
                         float(duration) if duration else None, subtitles, audio, series, credits)
    return meta, c.reasons


def _series(c: _Checker, series: Any) -> dict[str, Any] | None:
    """Optional: ``{"series_id": "...", "series_title": "...", "season": 1, "episode": 2}``."""
    if series is None:
        return None
    if not isinstance(series, Mapping):
        c.bad("series", 'must be an object like {"series_id": "the-show", "season": 1, "episode": 2}')
        return None
    series_id = series.get("series_id")
    ok = True
    if (problem := id_problem(series_id)) is not None:
        c.bad("series.series_id", problem)
        ok = False
    name = series.get("series_title")
    if name is not None and (not isinstance(name, str) or not name.strip()):
        c.bad("series.series_title", "must be a non-empty string when given")
        ok = False
    for key, low in (("season", 0), ("episode", 1)):
        value = series.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= 10_000:
            c.bad(f"series.{key}", f"is required: an integer from {low}")
            ok = False
    if not ok:
        return None
    return {"series_id": series_id, "series_title": name, "season": series["season"], "episode": series["episode"]}


def _license_terms(c: _Checker, terms: Any) -> dict[str, Any]:
    if not isinstance(terms, Mapping):
        c.bad("license_terms", "is required: territories, window_start, window_end, offline_download_allowed, "
                               "max_height")
        terms = {}
    territories = terms.get("territories")
    if not isinstance(territories, list) or not territories or not all(
            isinstance(t, str) and re.fullmatch(r"[A-Z]{2}", t) for t in territories):
        c.bad("license_terms.territories", "must be a non-empty list of ISO 3166-1 alpha-2 codes like 'US'")
        territories = []
    start = c.moment(terms.get("window_start"), "license_terms.window_start", required=True)
    end = c.moment(terms.get("window_end"), "license_terms.window_end", required=False)
    if start and end and end <= start:
        c.bad("license_terms.window_end", "must be after window_start")
    offline = terms.get("offline_download_allowed")
    if not isinstance(offline, bool):
        c.bad("license_terms.offline_download_allowed", "is required: true or false")
    max_height = terms.get("max_height")
    if not isinstance(max_height, int) or isinstance(max_height, bool) or not 144 <= max_height <= 4320:
        c.bad("license_terms.max_height", "must be the highest allowed resolution in lines, 144..4320")
        max_height = 2160
    return {"territories": territories, "window_start": start or datetime(1970, 1, 1, tzinfo=UTC),
            "window_end": end, "offline_download_allowed": bool(offline), "max_height": max_height}


def _sidecars(c: _Checker, items: Any, path: str, kind: str) -> list[SidecarSpec]:
    if not isinstance(items, list):
        c.bad(path, "must be a list")
        return []
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            c.bad(f"{path}[{i}]", "must be an object with 'file' and 'language'")
            continue
        file = c.text(item, "file", f"{path}[{i}].file")
        language = c.language(item, "language", f"{path}[{i}].language")
        if "/" in file or file.startswith("."):
            c.bad(f"{path}[{i}].file", "must be a file name next to the metadata file")
            continue
        if file and language:
            out.append(SidecarSpec(file, language, kind, bool(item.get("sdh", False)), bool(item.get("forced", False)),
                                   bool(item.get("audio_description", False))))
    return out
