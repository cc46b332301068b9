"""The pure parts of transcoding: ladder, grid, ffmpeg argument lists, vstats, tone map, calibration maths."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from reelstream.errors import ConfigError
from reelstream.media.transcode import layout
from reelstream.media.transcode.calibrate import crf_for, sample_chunks
from reelstream.media.transcode.chunk import parse_vstats
from reelstream.media.transcode.commands import (
    ChunkEncode,
    RungEncode,
    audio_command,
    chunk_command,
    filter_graph,
)
from reelstream.media.transcode.grid import Chunk, chunk_grid, seek_seconds
from reelstream.media.transcode.ladder import DEFAULT_LADDER, Rung, groups, ladder_for, load_ladder
from reelstream.media.transcode.tonemap import REFERENCE_WHITE, cube, peak_of, pq_to_nits, tone_map
from reelstream.media.transcode.x265 import timestamps_filter, x265_command
from reelstream.workers.capabilities import Capabilities, use_gpu

FPS = Fraction(24)


def test_default_ladder_follows_the_mission() -> None:
    assert 8 <= len(DEFAULT_LADDER) <= 12
    assert DEFAULT_LADDER[0].rendition_id == "h264-240p-400k"
    assert DEFAULT_LADDER[-1].rendition_id == "hevc-2160p-15000k-hdr"
    assert all(r.codec == "h264" and not r.hdr for r in DEFAULT_LADDER if r.height <= 1080)
    assert all(r.codec == "hevc" and r.hdr for r in DEFAULT_LADDER if r.height > 1080)
    assert set(groups(DEFAULT_LADDER)) == {"h264-sdr", "hevc-hdr"}


def test_rungs_above_the_master_or_the_license_are_dropped_and_widths_follow_the_aspect() -> None:
    sdr_720 = ladder_for(1280, 720, False)
    assert [r.height for r in sdr_720] == [240, 360, 480, 540, 720, 720]
    assert [r.width for r in sdr_720][:3] == [426, 640, 854]
    hdr_uhd = ladder_for(3840, 2160, True, max_height=1440)
    assert hdr_uhd[-1].rendition_id == "hevc-1440p-10000k-hdr"
    assert ladder_for(3840, 2160, False)[-1].rendition_id == "h264-1080p-8000k"  # no HDR rungs from SDR


def test_ladder_file_errors_name_the_rung(tmp_path: Path) -> None:
    bad = tmp_path / "ladder.json"
    bad.write_text('[{"codec": "h264", "height": 2160, "bitrate_kbps": 15000, "hdr": true}]')
    with pytest.raises(ConfigError, match="HDR rungs must be hevc"):
        load_ladder(bad)
    bad.write_text('[{"codec": "vp9", "height": 720, "bitrate_kbps": 3000}]')
    with pytest.raises(ConfigError, match="codec must be one of"):
        load_ladder(bad)


def test_the_grid_is_in_frames_and_the_last_chunk_is_short() -> None:
    assert chunk_grid(120, FPS) == [Chunk(0, 0, 48), Chunk(1, 48, 48), Chunk(2, 96, 24)]
    ntsc = chunk_grid(1000, Fraction(24000, 1001))
    assert {c.frame_count for c in ntsc[:-1]} == {48} and sum(c.frame_count for c in ntsc) == 1000
    assert seek_seconds(0, FPS) == 0.0
    # A quarter frame late: the demuxer lands on the chunk's own keyframe, not the GOP before it.
    assert seek_seconds(48, FPS) == pytest.approx((48 + 0.25) / 24)


def test_the_seek_counts_from_the_first_frame_when_the_video_starts_after_the_file() -> None:
    # ffmpeg seeks from the file's first timestamp (the audio's, here half a second earlier).
    late = job(video_start=Fraction(1, 2))
    argv = chunk_command("ffmpeg", late, Path("/tmp/vstats"))
    assert argv[argv.index("-ss") + 1] == "2.510417"
    assert seek_seconds(0, FPS, Fraction(1, 2)) == 0.0  # the first chunk decodes from the start


def job(**changes: object) -> ChunkEncode:
    rungs = (RungEncode("h264-240p-400k", "h264", 426, 240, 400, crf=23.5),
             RungEncode("h264-720p-3000k", "h264", 1280, 720, 3000))
    base = ChunkEncode(master=Path("/m/film.mov"), fps=FPS, start_frame=48, frame_count=48, rungs=rungs,
                       outputs=(Path("/o/a.mp4"), Path("/o/b.mp4")))
    return ChunkEncode(**{**base.__dict__, **changes})  # type: ignore[arg-type]


def test_one_decode_one_graph_every_rung_of_the_group() -> None:
    argv = chunk_command("ffmpeg", job(), Path("/tmp/vstats"))
    assert argv.count("-i") == 1
    assert argv[argv.index("-ss") - 1:argv.index("-ss") + 2] == ["-noaccurate_seek", "-ss", "2.010417"]
    assert filter_graph(job()) == (
        "[0:v:0]select=gte(t\\,-0.020833),trim=end_frame=48,setpts=PTS-STARTPTS,split=2[s0][s1];"
        "[s0]scale=426:240:flags=bicubic,setsar=1,format=yuv420p[v0];"
        "[s1]scale=1280:720:flags=bicubic,setsar=1,format=yuv420p[v1]")
    first = argv[argv.index("[v0]") - 1:argv.index("/o/a.mp4") + 1]
    # The rate-control fix: calibrated CRF capped by VBV; the other rung has no CRF and stays ABR.
    assert first[first.index("-crf") + 1] == "23.50" and first[first.index("-maxrate") + 1] == "440k"
    assert first[first.index("-bufsize") + 1] == "800k"
    second = argv[argv.index("[v1]"):]
    assert second[second.index("-b:v") + 1] == "3000k" and "-crf" not in second
    for flag, value in (("-g", "48"), ("-keyint_min", "48"), ("-sc_threshold", "0"), ("-frames:v", "48"),
                        ("-video_track_timescale", "90000")):
        assert first[first.index(flag) + 1] == value
    assert argv[-4:] == ["-vstats_file", "/tmp/vstats", "-vstats_version", "2"]


def test_hdr_rungs_carry_hdr10_signalling_and_sdr_rungs_of_an_hdr_master_are_tone_mapped() -> None:
    display = "G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,50)"
    hdr_job = job(rungs=(RungEncode("hevc-2160p-15000k-hdr", "hevc", 3840, 2160, 15000, hdr=True),),
                  outputs=(Path("/o/u.mp4"),), source_hdr=True, master_display=display, max_cll="1000,400")
    argv = chunk_command("ffmpeg", hdr_job, Path("/v"))
    # ffmpeg hands the rung's 10-bit frames to the x265 CLI (libx265 in the static ffmpeg is 8-bit only).
    assert argv[argv.index("[v0]") + 1:] [:9] == ["-pix_fmt", "yuv420p10le", "-frames:v", "48", "-f", "yuv4mpegpipe",
                                                  "-strict", "-1", "/o/u.y4m"]
    assert "libx265" not in argv
    x265 = x265_command("x265", hdr_job.rungs[0], 48, "veryfast", display, "1000,400", 1, Path("/o/u.mp4"))
    flag = {a: x265[i + 1] for i, a in enumerate(x265[:-1]) if a.startswith("--")}
    assert flag["--master-display"] == display and flag["--max-cll"] == "1000,400"
    assert (flag["--transfer"], flag["--colorprim"], flag["--colormatrix"]) == ("smpte2084", "bt2020", "bt2020nc")
    assert (flag["--output-depth"], flag["--profile"], flag["--keyint"], flag["--min-keyint"]) == ("10", "main10",
                                                                                                   "48", "48")
    assert {"--no-scenecut", "--no-open-gop", "--hdr10", "--repeat-headers"} <= set(x265)
    assert flag["--input"] == "/o/u.y4m" and flag["--output"] == "/o/u.hevc" and flag["--frame-threads"] == "1"
    # Display order from x265's frame log: pts by POC, dts in decode order less the reorder delay.
    setts = timestamps_filter((0, 4, 2, 1, 3), FPS)
    assert setts.startswith("setts=pts=(if(eq(N\\,0)\\,0\\,if(eq(N\\,1)\\,4\\,") and ":dts=(N-2)*" in setts
    assert "lut3d" not in filter_graph(hdr_job)
    sdr_of_hdr = job(source_hdr=True, tonemap_lut=Path("/luts/pq.cube"))
    graph = filter_graph(sdr_of_hdr)
    assert "in_color_matrix=bt2020" in graph and "lut3d=file='/luts/pq.cube'" in graph
    assert graph.index("lut3d") < graph.index("split=2")  # tone-mapped once, before the split


def test_threads_pin_a_worker_to_its_core_and_gpu_jobs_use_nvenc() -> None:
    argv = chunk_command("ffmpeg", job(threads=1), Path("/v"))
    assert argv[argv.index("-filter_threads") + 1] == "1" and argv.count("-threads") == 3
    gpu = chunk_command("ffmpeg", job(gpu=True), Path("/v"))
    assert gpu[gpu.index("-c:v") + 1] == "h264_nvenc" and "-forced-idr" in gpu


def test_gpu_routing_with_forced_capabilities() -> None:
    gpu, cpu = Capabilities(True, "ffmpeg-gpu"), Capabilities(False, "ffmpeg")
    assert use_gpu(True, gpu) is True
    assert use_gpu(True, cpu) is False  # fall back to CPU
    assert use_gpu(False, gpu) is False  # H.264 SDR stays on x264 even on a GPU worker


def test_audio_is_aac_lc_stereo_and_ad_is_flagged() -> None:
    argv = audio_command("ffmpeg", Path("/s.mov"), 1, "fr", 128, True, Path("/o.mp4"))
    assert argv[argv.index("-map") + 1] == "0:a:1"
    assert [argv[argv.index(f) + 1] for f in ("-c:a", "-profile:a", "-ac", "-ar")] == ["aac", "aac_low", "2", "48000"]
    assert "descriptions" in argv[argv.index("-disposition:a:0") + 1]


def test_vstats_give_frames_and_mean_encoder_psnr_per_output() -> None:
    text = ("out=  0 st=  0 frame=     0 q= 32.0 PSNR=  40.00 f_size=   3595 s_size=  0KiB time= 0.010 br= 1kbits/s"
            " avg_br= 0kbits/s type= I\n"
            "out=  1 st=  0 frame=     0 q= -1.0 PSNR=  30.00 f_size=   488 s_size= 7KiB time= 0.8 br= 9kbits/s"
            " avg_br= 7kbits/s type= P\n"
            "out=  0 st=  0 frame=     1 q= 32.0 PSNR=  42.00 f_size=   1214 s_size= 4KiB time= 0.01 br= 2kbits/s"
            " avg_br= 2kbits/s type= P\n")
    assert parse_vstats(text, 2) == [(2, 41.0), (1, 30.0)]


def test_calibration_interpolates_on_log_bitrate() -> None:
    assert crf_for(400, (20, 800), (28, 200)) == pytest.approx(24.0)
    assert crf_for(10, (20, 800), (28, 200)) == 45.0  # clamped
    grid = chunk_grid(24 * 120, FPS)
    # Level samples: one per 3 chunks, 1 to 10, one in each equal stretch at golden-ratio offsets,
    # so that they fall on every phase of content that repeats (here every 2 and every 3 chunks).
    samples = [c.index for c in sample_chunks(grid[:30])]
    assert samples == [1, 3, 8, 10, 12, 17, 18, 23, 25, 27]
    assert {i % 2 for i in samples} == {0, 1} and {i % 3 for i in samples} == {0, 1, 2}
    assert len(sample_chunks(grid)) == 10 and [c.index for c in sample_chunks(grid[:15])] == [1, 3, 8, 10, 12]
    assert len(sample_chunks(grid[:5])) == 1 and [c.index for c in sample_chunks(grid, 2)] == [18, 37]


def test_tone_map_keeps_black_and_maps_reference_white_to_sdr_white() -> None:
    assert pq_to_nits(0.0) == 0.0 and pq_to_nits(1.0) == pytest.approx(10000.0)
    assert tone_map((0.0, 0.0, 0.0), 1000) == (0.0, 0.0, 0.0)
    white = 0.58069  # PQ code of 203 cd/m2
    assert pq_to_nits(white) == pytest.approx(REFERENCE_WHITE, rel=0.01)
    r, g, b = tone_map((white, white, white), 1000)
    assert 0.65 < r < 0.9 and r == pytest.approx(g, rel=1e-3) and r == pytest.approx(b, rel=1e-3)
    assert max(tone_map((1.0, 1.0, 1.0), 1000)) <= 1.0
    text = cube(size=3)
    assert text.splitlines()[1] == "LUT_3D_SIZE 3" and len(text.splitlines()) == 2 + 27
    assert peak_of(None, "1000,400") == 1000.0 and peak_of("G(1,1)B(1,1)R(1,1)WP(1,1)L(40000000,50)", None) == 4000


def test_object_layout_is_the_packagers_contract() -> None:
    assert layout.chunk_key("t1", "h264-720p-3000k", 7) == "titles/t1/renditions/h264-720p-3000k/chunks/000007.mp4"
    assert layout.audio_key("t1", layout.audio_track_id("en", True)) == "titles/t1/audio/audio-en-ad.mp4"
    assert layout.subtitle_key("t1", layout.text_track_id("fr", True, False)) == "titles/t1/subtitles/text-fr-sdh.vtt"
    assert layout.master_key("t1", "film.mov") == "titles/t1/master/film.mov"
    assert layout.job_record_key("t1", "t1:h264-sdr:3") == "titles/t1/jobs/h264-sdr/3.json"
    assert Rung("hevc", 2160, 15000, True).rendition_id == "hevc-2160p-15000k-hdr"
