"""The sampled timestamps' arithmetic: Matroska's 1-ms rounding is no drift, a stretch at another
rate is, and the span counts the last frame's own duration."""

from __future__ import annotations

from fractions import Fraction

from reelstream.media.timestamps import TimestampSample, Window


def ms(times: list[float]) -> Window:
    return Window(tuple(Fraction(round(t * 1000), 1000) for t in times))


NTSC = Fraction(30000, 1001)


def test_ntsc_rounded_to_the_millisecond_drifts_under_a_millisecond() -> None:
    window = ms([100 + n / NTSC for n in range(600)])
    drift, _ = window.drift(NTSC)
    assert drift < Fraction(1, 1000)


def test_a_stretch_at_half_the_rate_drifts_by_its_length() -> None:
    times = [n / 30 for n in range(60)] + [2 + n / 15 for n in range(30)]  # 2 s at 30 fps, 2 s at 15
    drift, at = ms(times).drift(Fraction(30))
    assert at == 89 and abs(drift - (1 - Fraction(1, 30))) < Fraction(1, 1000)  # frame 89: 3.933 s, not 2.967


def test_the_span_runs_to_the_end_of_the_last_frame() -> None:
    first, last = ms([0, 1 / 25, 2 / 25]), ms([9.92, 9.96])
    assert TimestampSample(first, last, ()).span(Fraction(25)) == 10
    assert TimestampSample(Window(()), last, ()).span(Fraction(25)) is None
