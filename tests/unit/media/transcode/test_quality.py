"""Per-chunk quality figures read from the encoders' own reports, and the calibration's trial span."""

from __future__ import annotations

from pathlib import Path

import pytest

from reelstream.media.transcode.calibrate import trial_span
from reelstream.media.transcode.chunk import parse_x264_ssim
from reelstream.media.transcode.commands import ChunkEncode, RungEncode, chunk_command, h264_args
from reelstream.media.transcode.grid import Chunk
from reelstream.media.transcode.run import error_lines
from reelstream.media.transcode.x265 import read_frame_log

# What ffmpeg 8.1 prints with -loglevel level+info as it frees two libx264 encoders (trimmed).
FFMPEG_STDERR = """\
[out#0/mp4 @ 0x55a0] [info] video:41kB audio:0kB subtitle:0kB other streams:0kB global headers:0kB
[libx264 @ 0x7fb847131400] [info] frame I:1     Avg QP:19.27  size: 10021
[libx264 @ 0x7fb847131400] [info] SSIM Mean Y:0.9723400 (15.558db)
[libx264 @ 0x7fb847131400] [info] kb/s:168.15
[libx264 @ 0x7fb847131c00] [info] frame I:1     Avg QP:22.01  size: 51002
[libx264 @ 0x7fb847131c00] [info] SSIM Mean Y:0.8153300 ( 7.331db)
"""

# x265 3.5's --csv with --crf, --psnr and --ssim at --log-level info (columns abridged).
X265_CSV = """\
Encode Order, Type, POC, QP, Bits, Scenecut, RateFactor, Y PSNR, U PSNR, V PSNR, YUV PSNR, SSIM, SSIM(dB), Latency
0, I-SLICE,    0, 26.08,      25440, 0,25.087, 44.528, 42.511, 42.286, 43.900, 0.993642, 21.966, 11
1, P-SLICE,    2, 28.55,      12104, 0,28.000, 42.528, 41.511, 41.286, 42.100, 0.983642, 17.866, 9
2, B-SLICE,    1, 29.55,       8104, 0,28.000, 41.528, 40.511, 40.286, 41.100, 0.973642, 15.866, 9
"""


def test_x264_ssim_in_output_order() -> None:
    assert parse_x264_ssim(FFMPEG_STDERR) == [0.97234, 0.81533]


def test_x264_measures_ssim_and_the_chunk_command_keeps_its_report() -> None:
    args = h264_args(RungEncode("r", "h264", 426, 240, 400, crf=25.0), 48, "veryfast")
    assert "ssim=1" in args[args.index("-x264-params") + 1].split(":")
    job = ChunkEncode(Path("m.mp4"), fps=24, start_frame=48, frame_count=48, rungs=(RungEncode("r", "h264", 426, 240, 400),),
                      outputs=(Path("r.mp4"),))
    argv = chunk_command("ffmpeg", job, Path("v.log"))
    assert argv[argv.index("-loglevel") + 1] == "level+info" and "-nostats" in argv


def test_a_job_that_measures_nothing_asks_x264_for_nothing() -> None:
    """Calibration trials are read for their size only: no PSNR, no SSIM, no vstats."""
    job = ChunkEncode(Path("m.mp4"), fps=24, start_frame=48, frame_count=48, rungs=(RungEncode("r", "h264", 426, 240, 400),),
                      outputs=(Path("r.mp4"),), measure=False)
    argv = chunk_command("ffmpeg", job, Path("v.log"))
    assert argv[argv.index("-flags") + 1] == "+cgop" and "-vstats_file" not in argv
    assert argv[argv.index("-x264-params") + 1] == "open-gop=0:stitchable=1"


def test_x265_frame_log_columns_are_found_by_name(tmp_path: Path) -> None:
    path = tmp_path / "r.x265.csv"
    path.write_text(X265_CSV)
    log = read_frame_log(path)
    assert log.pocs == (0, 2, 1)
    assert log.psnr_y is not None and abs(log.psnr_y - (44.528 + 42.528 + 41.528) / 3) < 1e-9
    assert log.ssim is not None and abs(log.ssim - 0.983642) < 1e-9
    path.write_text(X265_CSV.replace(", Y PSNR, U PSNR, V PSNR, YUV PSNR, SSIM, SSIM(dB)", "")
                    .replace(", 44.528, 42.511, 42.286, 43.900, 0.993642, 21.966", ""))
    assert read_frame_log(path).psnr_y is None  # not measured: never the Latency column


def test_failures_show_the_error_lines_not_the_info_report() -> None:
    stderr = FFMPEG_STDERR + "[vost#0:0 @ 0x1] [error] Error while opening encoder\n"
    assert error_lines(stderr) == ["[vost#0:0 @ 0x1] [error] Error while opening encoder"]


def test_trials_encode_the_first_five_frames_of_a_sample_chunk() -> None:
    assert trial_span(Chunk(7, 336, 48)) == Chunk(7, 336, 5)
    assert trial_span(Chunk(9, 432, 120)) == Chunk(9, 432, 5)
    assert trial_span(Chunk(0, 0, 3)) == Chunk(0, 0, 3)


def test_a_trial_is_read_as_the_rate_of_a_whole_chunk() -> None:
    """One IDR frame per chunk: the span's other frames stand for the chunk's other frames."""
    from fractions import Fraction

    from reelstream.media.transcode.calibrate import whole_chunk_kbps

    # IDR 6,000 bytes, then 1,000 each: a 48-frame chunk at 24 fps is 53,000 bytes in 2 s.
    assert whole_chunk_kbps([6000, 1000, 1000, 1000], 48, Fraction(24)) == pytest.approx(53_000 * 8 / 1000 / 2)
    assert whole_chunk_kbps([6000], 1, Fraction(24)) == pytest.approx(6000 * 8 / 1000 * 24)



def test_the_correction_is_a_newton_step_to_what_the_other_chunks_must_average() -> None:
    import math

    from reelstream.media.transcode.calibrate import RULE_OF_THUMB_SLOPE, corrected_crf, trial_slope

    def kbps(crf: float) -> float:  # log-linear near the target
        return math.exp(12.0 - 0.12 * crf)

    slope = trial_slope([(23.0, kbps(23.0)), (27.0, kbps(27.0))])
    assert slope == pytest.approx(-0.12)
    # Nothing kept (per-title anchors): straight to the target along the slope.
    assert corrected_crf(kbps(25.0), 24.0, kbps(24.0), slope, 30.0, 0.0, 0.0) == 25.0
    # 6 s of a 30-s title kept at 10 % under target: the other 24 s must average 2.5 % over it.
    target = 1000.0
    crf = corrected_crf(target, 24.0, 900.0, slope, 30.0, 6.0, 900.0 * 6)
    assert 900.0 * math.exp(-0.12 * (crf - 24.0)) == pytest.approx(1025.0, rel=2e-3)  # on this curve
    # One odd sample cannot ask the rest for more than 1.25x the target.
    assert corrected_crf(target, 24.0, 1000.0, slope, 10.0, 8.0, 100.0 * 8) == round(24.0 - math.log(1.25) / 0.12, 2)
    # Trials with no slope (a clamped CRF, a still slide): the rule of thumb.
    assert trial_slope([(10.0, 50.0), (10.0, 50.0)]) == RULE_OF_THUMB_SLOPE
    assert trial_slope([(23.0, 50.0), (29.0, 51.0)]) == RULE_OF_THUMB_SLOPE

def test_the_level_groups_give_the_rate_at_the_provisional_crf_and_the_whole_chunks_slope() -> None:
    import math

    from reelstream.media.transcode.calibrate import level_fit

    def kbits(crf: float, seconds: float = 2.0) -> float:
        return math.exp(8.0 - 0.25 * crf) * seconds

    # Provisional CRF 20, groups at 19.25 (side -1) and 20.75 (side +1).
    samples = [(1, 2.0, kbits(20.75)), (-1, 2.0, kbits(19.25)), (1, 2.0, kbits(20.75)), (-1, 1.0, kbits(19.25, 1.0))]
    middle, slope = level_fit(samples, 0.75, -0.1)
    assert middle == pytest.approx(kbits(20.0) / 2) and slope == pytest.approx(-0.25)
    # One group, or groups whose content differences make the curve rise: the trials' slope.
    assert level_fit(samples[:1], 0.0, -0.1) == (pytest.approx(kbits(20.75) / 2), -0.1)
    assert level_fit([(1, 2.0, 900.0), (-1, 2.0, 800.0)], 0.75, -0.1)[1] == -0.1


def test_the_curvature_of_the_trials_lowers_the_middle_and_bends_the_step() -> None:
    """log(rate) convex in CRF: the level groups' geometric middle reads high by curvature *
    spread**2 / 2, and a straight Newton step overshoots; both follow the parabola instead."""
    import math

    from reelstream.media.transcode.calibrate import (
        CURVATURE_MAX,
        corrected_crf,
        level_fit,
        trial_curvature,
    )

    def log_kbps(crf: float) -> float:  # slope -0.25 at CRF 20, curvature 0.04
        return 7.0 - 0.25 * (crf - 20.0) + 0.02 * (crf - 20.0) ** 2

    trials = [(23.0, math.exp(log_kbps(23.0))), (18.0, math.exp(log_kbps(18.0))), (19.5, math.exp(log_kbps(19.5)))]
    curvature = trial_curvature(trials)
    assert curvature == pytest.approx(0.04)
    assert trial_curvature(trials[:2]) == 0.0 and trial_curvature([trials[0], trials[0], trials[1]]) == 0.0
    assert trial_curvature([(18.0, 100.0), (20.0, 10.0), (22.0, 100.0)]) == CURVATURE_MAX  # bounded
    assert trial_curvature([(18.0, 10.0), (20.0, 100.0), (22.0, 10.0)]) == 0.0  # concave: not trusted

    samples = [(1, 2.0, 2.0 * math.exp(log_kbps(20.75))), (-1, 2.0, 2.0 * math.exp(log_kbps(19.25)))]
    middle, slope = level_fit(samples, 0.75, -0.1, curvature)
    assert math.log(middle) == pytest.approx(log_kbps(20.0)) and slope == pytest.approx(-0.25)
    assert level_fit(samples, 0.75, -0.1)[0] > middle  # the straight middle reads high

    # Steps both ways land on the curve, where a straight step overshoots the rate.
    for goal_crf in (21.5, 18.5):
        target = math.exp(log_kbps(goal_crf))
        crf = corrected_crf(target, 20.0, middle, slope, 30.0, 0.0, 0.0, curvature)
        assert crf == pytest.approx(goal_crf, abs=0.01)
        straight = corrected_crf(target, 20.0, middle, slope, 30.0, 0.0, 0.0)
        assert log_kbps(straight) > math.log(target)
