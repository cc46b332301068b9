"""Metadata and subtitle checks: every problem named, machine-readable."""

from __future__ import annotations

import copy
from typing import Any

from reelstream.ingest import subtitles
from reelstream.ingest.languages import primary
from reelstream.ingest.metadata import parse_metadata

GOOD: dict[str, Any] = {
    "title_id": "film-1", "title": "Film", "original_language": "en", "audio_languages": ["en", "fr"],
    "rating": {"system": "MPAA", "value": "PG-13"}, "genres": ["drama"],
    "license_terms": {"territories": ["US"], "window_start": "2026-01-01T00:00:00Z", "window_end": None,
                      "offline_download_allowed": True, "max_height": 2160},
    "master": {"sha256": "a" * 64, "size_bytes": 10},
    "subtitles": [{"file": "en.srt", "language": "en", "sdh": True}],
    "audio": [{"file": "ad.m4a", "language": "en", "audio_description": True}],
}


def test_good_metadata_parses() -> None:
    meta, reasons = parse_metadata(GOOD)
    assert reasons == [] and meta is not None
    assert meta.subtitles[0].sdh and meta.audio[0].audio_description
    assert meta.registered_data()["license_terms"]["max_height"] == 2160


def test_every_bad_field_is_named() -> None:
    doc = copy.deepcopy(GOOD)
    doc["license_terms"].update(window_end="2025-01-01T00:00:00Z", territories=["usa"])
    doc["audio_languages"] = ["fr"]
    del doc["rating"]
    doc["master"]["sha256"] = "xyz"
    meta, reasons = parse_metadata(doc)
    assert meta is not None
    assert {r.code for r in reasons} == {"METADATA_INVALID"}
    assert {r.field for r in reasons} == {"license_terms.window_end", "license_terms.territories", "audio_languages",
                                          "rating", "master.sha256"}


def test_without_a_usable_title_id_there_is_no_title() -> None:
    meta, reasons = parse_metadata({**GOOD, "title_id": "Bad Id!"})
    assert meta is None and reasons[0].field == "title_id"
    assert parse_metadata(["not", "an", "object"])[0] is None


def test_an_id_given_but_invalid_is_told_what_is_wrong_not_that_it_is_required() -> None:
    def message(field: str = "title_id", **fields: Any) -> str:
        return next(r.message for r in parse_metadata({**GOOD, **fields})[1] if r.field == field)

    spaced = message(title_id="My Film")
    assert "required" not in spaced
    assert "'My Film' contains ' ', 'F', 'M'" in spaced and "lowercase letters, digits" in spaced
    assert "(e.g. 'my-film')" in spaced
    assert "is 65 characters long" in message(title_id="a" * 65)
    assert "starts with '-'" in message(title_id="-film")
    assert "contains '\\n'" in message(title_id="film\n")  # '$' alone let a trailing newline through
    assert "must be a string" in message(title_id=7) and "not 7" in message(title_id=7)
    assert message(title_id=None).startswith("is required:")
    series = message("series.series_id", series={"series_id": "The Show", "season": 1, "episode": 1})
    assert "'The Show' contains" in series and "(e.g. 'the-show')" in series



def test_a_lone_surrogate_escape_is_refused_naming_where_it_is() -> None:
    import json

    doc = json.loads(json.dumps(GOOD).replace('"Film"', '"Fi\\ud800lm"'))  # what json.loads gives
    meta, reasons = parse_metadata(doc)
    assert meta is None and len(reasons) == 1
    assert "field 'title'" in reasons[0].message and "surrogate" in reasons[0].message
    paired = json.loads(json.dumps(GOOD).replace('"Film"', '"Fi\\ud83c\\udfa5lm"'))  # a valid pair
    assert parse_metadata(paired)[1] == []

def test_language_tags_compare_across_bcp47_and_iso639_2() -> None:
    assert primary("eng") == primary("en") == primary("en-GB") == "en"
    assert primary("fre") == primary("fra") == "fr"
    assert primary("und") is None and primary(None) is None


SRT = "1\n00:00:01,000 --> 00:00:02,500\nHello\n\n2\n00:00:03,000 --> 00:00:04,000\n[door slams]\n"


def test_srt_converts_to_webvtt_and_sdh_is_recognised() -> None:
    fmt, cues = subtitles.parse(SRT)
    assert fmt == "srt" and [(c.start_ms, c.end_ms) for c in cues] == [(1000, 2500), (3000, 4000)]
    vtt = subtitles.to_webvtt(cues)
    assert vtt.startswith("WEBVTT\n\n00:00:01.000 --> 00:00:02.500\nHello")
    again = subtitles.parse(vtt)
    assert again[0] == "webvtt" and again[1] == cues  # round trip
    assert subtitles.looks_sdh(cues)


def test_bad_timing_is_reported_per_cue() -> None:
    _, cues = subtitles.parse("WEBVTT\n\n00:00:05.000 --> 00:00:04.000\nBackwards\n\n"
                              "00:00:01.000 --> 00:00:02.000\nOut of order\n\n00:01:00.000 --> 00:01:01.000\nLate\n")
    problems = subtitles.timing_problems(cues, duration_ms=10_000)
    assert any("cue 1 ends" in p for p in problems)
    assert any("cue 2 starts" in p for p in problems)
    assert any("cue 3 ends at 61000 ms, after the master ends" in p for p in problems)


def test_malformed_timing_line_is_an_error() -> None:
    try:
        subtitles.parse("1\n00:00:01 --> 00:00:02\nNo millis\n")
    except subtitles.SubtitleError as e:
        assert "cue 1" in str(e)
    else:
        raise AssertionError("malformed timing accepted")


def test_a_rating_outside_its_system_or_an_unknown_system_is_named_with_the_choices() -> None:
    for rating, field, says in [
        ({"system": "MPAA", "value": "PG13"}, "rating.value", "'PG13' is not among MPAA's ratings: did you mean 'PG-13'?"),
        ({"system": "MPAA", "value": "TV-MA"}, "rating.value", "one of G, PG, PG-13, R, NC-17, NR"),
        ({"system": "mpaa", "value": "R"}, "rating.system", "did you mean 'MPAA'?"),
        ({"system": "XYZ", "value": "R"}, "rating.system", "reelstream/ingest/ratings.py"),
    ]:
        _, reasons = parse_metadata({**GOOD, "rating": rating})
        assert [(r.code, r.field) for r in reasons] == [("METADATA_INVALID", field)]
        assert says in reasons[0].message
    for system, value in [("TV", "TV-14"), ("BBFC", "12A"), ("FSK", "16")]:
        assert parse_metadata({**GOOD, "rating": {"system": system, "value": value}})[1] == []


def test_an_arrow_in_srt_cue_text_is_escaped_in_webvtt() -> None:
    _, cues = subtitles.parse("1\n00:00:01,000 --> 00:00:02,000\nHe said -->\nthen left\n\n"
                              "2\n00:00:03,000 --> 00:00:04,000\nNext\n")
    vtt = subtitles.to_webvtt(cues)
    assert "He said --&gt;\nthen left" in vtt
    lines = vtt.split("\n")
    assert [line for line in lines if "-->" in line] == ["00:00:01.000 --> 00:00:02.000", "00:00:03.000 --> 00:00:04.000"]
