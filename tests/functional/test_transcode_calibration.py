"""Calibration trials on real encodes: a trial's first frames read as the rate of a whole chunk."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from reelstream.media.package.errors import CorruptMedia
from reelstream.media.transcode import calibrate
from reelstream.media.transcode.calibrate import sample_sizes, trial_span, whole_chunk_kbps
from reelstream.media.transcode.chunk import EncodedChunk, encode_chunk
from reelstream.media.transcode.commands import ChunkEncode, RungEncode
from reelstream.media.transcode.grid import Chunk
from tests.support.media import make_master


def test_a_trial_read_as_a_whole_chunk_is_nearer_the_chunk_than_its_plain_rate(tmp_path: Path) -> None:
    master = make_master(tmp_path / "m.mp4", seconds=4, languages=())
    chunk = Chunk(1, 48, 48)
    rung = RungEncode("r", "h264", 320, 180, 100_000, crf=23.0)
    fps = Fraction(24)

    def encode(span: Chunk, name: str) -> Path:
        (tmp_path / name).mkdir()
        job = ChunkEncode(master, fps, span.start_frame, span.frame_count, (rung,), (tmp_path / name / "r.mp4",),
                          threads=1, measure=False)
        return encode_chunk(job, tmp_path)[0].path

    whole = encode(chunk, "whole")
    whole_kbps = whole_chunk_kbps(sample_sizes(whole), 48, fps)
    assert whole_kbps == pytest.approx(sum(sample_sizes(whole)) * 8 / 1000 / 2)
    trial = encode(trial_span(chunk), "trial")
    sizes = sample_sizes(trial)
    assert len(sizes) == trial_span(chunk).frame_count == 5 and sizes[0] == max(sizes)  # the IDR frame first
    plain = sum(sizes) * 8 / 1000 / float(Fraction(5) / fps)
    estimate = whole_chunk_kbps(sizes, 48, fps)
    assert abs(estimate / whole_kbps - 1) < abs(plain / whole_kbps - 1)
    assert plain > whole_kbps * 1.1  # the IDR frame, once in 5 frames, inflates the plain rate


def test_a_file_with_no_moov_is_corrupt_media(tmp_path: Path) -> None:
    (tmp_path / "bad.mp4").write_bytes(b"\x00\x00\x00\x08free")
    with pytest.raises(CorruptMedia):
        sample_sizes(tmp_path / "bad.mp4")


def test_rungs_of_one_size_at_one_crf_are_one_trial_encode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    master = make_master(tmp_path / "m.mp4", seconds=4, languages=())
    fps = Fraction(24)
    rungs = [RungEncode("small", "h264", 160, 90, 200), RungEncode("low", "h264", 320, 180, 300),
             RungEncode("high", "h264", 320, 180, 600)]
    encoded: list[tuple[str, ...]] = []

    def counting(job: ChunkEncode, scratch: Path | None = None) -> list[EncodedChunk]:
        encoded.append(tuple(r.rendition_id for r in job.rungs))
        return encode_chunk(job, scratch)

    monkeypatch.setattr(calibrate, "encode_chunk", counting)
    same = calibrate._trial(master, fps, Chunk(1, 48, 48), rungs, [23.0, 23.0, 23.0], None, tmp_path)
    assert len(encoded[-1]) == 2 and same[1] == same[2]  # the two 320x180 rungs: one encode, one rate
    apart = calibrate._trial(master, fps, Chunk(1, 48, 48), rungs, [23.0, 20.0, 26.0], None, tmp_path)
    assert len(encoded[-1]) == 3 and apart[1] > same[1] > apart[2]  # at different CRFs each has its own
    assert apart[0] == same[0]  # the same encode in both trials gives the same bytes
