"""CMCD comes from the viewer's query string: a value no event field can hold must cost only
its own field (or its own line), never the lines shipped after it."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from reelstream.events.codec import EventCodec
from reelstream.processors.cmcd.logic import edge_events, parse_cmcd
from tests.unit.edge.test_steering_and_processors import LOG


def line_with(cmcd: str) -> str:
    return LOG.replace("bl%3D8000%2Cbr%3D800%2Cd%3D2000%2Cmtp%3D9000%2Cot%3Dv%2Csid%3D%22s1%22%2Csu",
                       quote(quote(cmcd, safe=""), safe=""))


@pytest.mark.parametrize("number", ["nan", "inf", "-inf", "1e999", "NaN"])
def test_a_non_finite_number_stays_a_token(number: str) -> None:
    assert parse_cmcd(f"br={number},bl=8000") == {"br": number, "bl": 8000}


@pytest.mark.parametrize("cmcd", ['br=nan,sid="s1"', 'br=1e999,sid="s1"', 'bl=99999999999999999999999,sid="s1"',
                                  'br=-1e300,sid="s1"'])
def test_a_hostile_value_drops_only_its_field_and_the_event_still_encodes(cmcd: str) -> None:
    events = edge_events([(0, line_with(cmcd))], producer="test")
    assert len(events) == 1
    event = events[0]
    assert event["session_id"] == "s1"
    assert event["bitrate_kbps"] is None or event["bitrate_kbps"] >= 0
    assert event["buffer_ms"] is None
    EventCodec().decode(EventCodec().encode(event))  # what the shipper publishes next: it must not raise


def test_a_line_no_event_can_carry_is_skipped_and_reported_and_the_next_one_ships() -> None:
    broken = LOG.replace('"status":200', '"status":"two hundred"')
    skipped: list[tuple[int, str]] = []
    events = edge_events([(0, broken), (400, LOG)], producer="test",
                         skipped=lambda offset, line, error: skipped.append((offset, type(error).__name__)))
    assert [e["status"] for e in events] == [200]
    assert skipped == [(0, "ValueError")]
