"""The sampled timestamp windows read a few seconds of a long master, wherever its timestamps
start (a timecode of 10:00:00:00), and find a constant rate constant. Real ffmpeg."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

from reelstream.media import timestamps
from tests.support.media import ffmpeg


def test_windows_of_a_master_stamped_from_its_timecode_stay_small(tmp_path: Path) -> None:
    film = tmp_path / "film.ts"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=128x72:r=25:d=100", "-c:v", "libx264", "-preset", "veryfast",
           "-g", "50", "-output_ts_offset", "36000", str(film))
    sample = timestamps.sample(film, 100.0)
    windows = (sample.first, *sample.inner, sample.last)
    assert sample.first.times[0] >= 36000
    assert sum(len(w.times) for w in windows) < 1500  # of 2,500 frames: the last window did not read them all
    assert all(len(w.times) >= 50 for w in windows)  # each window is where it should be, not before the start
    assert sample.span(Fraction(25)) == 100
    assert max(w.drift(Fraction(25))[0] for w in windows) < Fraction(1, 1000)
