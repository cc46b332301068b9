"""Per-title ladders for an HDR10 master, on the embedded runtime with real ffmpeg and x265:
each encoder group is measured and chosen on its own hull — the HEVC Main10 HDR rungs from
HEVC trials scored in 10 bits against the PQ master, the tone-mapped H.264 SDR rungs from
H.264 trials scored against the master tone-mapped the same way — recorded as one pair of
events per group, planned and encoded into Main10 PQ and BT.709 renditions."""

from __future__ import annotations

import threading
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import pytest

from reelstream.cli import main as cli_main
from reelstream.cli.ladder import replay_differences
from reelstream.config import Settings
from reelstream.ingest.per_title import job_template
from reelstream.ingest.service import IngestService
from reelstream.media import tools
from reelstream.media.ladder.analyze import HDR_TRIAL_CRFS, ssim_of
from reelstream.media.probe import count_frames, probe
from reelstream.media.transcode.chunk import encode_chunk
from reelstream.media.transcode.commands import RungEncode
from reelstream.media.transcode.ladder import Rung
from reelstream.runtime import Runtime
from reelstream.workers.capabilities import Capabilities
from reelstream.workers.transcode import TranscodeWorker
from tests.functional.test_transcode_embedded import events, finished, run_completion_until
from tests.functional.test_transcode_hdr import ffprobe
from tests.support.media import make_master, title_metadata, write_metadata

# Two groups, tiny: H.264 SDR 144p/150 .. 180p/600, HEVC HDR10 144p/300 .. 180p/600.
LADDER = (Rung("h264", 144, 150), Rung("h264", 180, 600), Rung("hevc", 144, 300, hdr=True),
          Rung("hevc", 180, 600, hdr=True))


def test_an_hdr_master_gets_per_title_hdr_and_tone_mapped_sdr_rungs(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runtime = Runtime(Settings(data_dir=tmp_path / "reel", ladder_mode="per_title"))
    (tmp_path / "studio").mkdir()
    master = make_master(tmp_path / "studio" / "hdr.mp4", seconds=4, hdr=True, languages=("en",))
    metadata = write_metadata(tmp_path / "studio" / "title.json", title_metadata("hdr-pt", master, languages=("en",)))
    result = IngestService(runtime, LADDER).ingest(master, metadata)

    catalog = [e for e in events(runtime, "reel.catalog") if e["title_id"] == "hdr-pt"]
    kinds = [e.type for e in catalog]
    assert kinds[kinds.index("IngestValidated") + 1:] == ["TitleComplexityAnalyzed", "TitleLadderChosen"] * 2 + [
        "TranscodePlanned"]
    sdr_analysis, sdr_chosen, hdr_analysis, hdr_chosen, planned = catalog[-5:]
    assert [e["encoder_group"] for e in (sdr_analysis, sdr_chosen, hdr_analysis, hdr_chosen)] == [
        "h264-sdr", "h264-sdr", "hevc-hdr", "hevc-hdr"]
    assert hdr_analysis.header.causation_id == sdr_chosen.event_id  # one chain: validated .. planned
    assert planned.header.causation_id == hdr_chosen.event_id

    # HDR trials: HEVC at both HDR heights and the HDR trial CRFs, scored in 10 bits.
    assert hdr_analysis["codec"] == "hevc" and "10 bits" in hdr_analysis["method"]
    assert {(p["height"], p["crf"]) for p in hdr_analysis["points"]} >= {(h, c) for h in (144, 180)
                                                                         for c in HDR_TRIAL_CRFS}
    assert len(hdr_analysis["samples"]) <= 2
    assert sdr_analysis["codec"] == "h264" and "tone-mapped" in sdr_analysis["method"]
    for analysis in (sdr_analysis, hdr_analysis):
        for height in (144, 180):  # lower CRF: more bits and a better score
            curve = sorted((p for p in analysis["points"] if p["height"] == height), key=lambda p: -p["crf"])
            assert [p["kbps"] for p in curve] == sorted(p["kbps"] for p in curve)
            assert curve[-1]["score"] > curve[0]["score"] > 0.5

    # Each group's ladder: within its floor and ceiling, replayable from its own analysis;
    # HDR rungs are HEVC Main10, SDR ones H.264; 8..12 in all.
    sdr_rungs = [r for r in sdr_chosen["rungs"] if r["crf"] is not None]
    hdr_rungs = [r for r in hdr_chosen["rungs"] if r["crf"] is not None]
    assert all(r["codec"] == "h264" and not r["hdr"] and r["cap_kbps"] <= 600 for r in sdr_rungs)
    assert all(r["codec"] == "hevc" and r["hdr"] and r["cap_kbps"] <= 600 for r in hdr_rungs)
    assert 1 <= len(hdr_rungs) <= 2 and 8 <= len(sdr_rungs) + len(hdr_rungs) <= 12
    assert replay_differences(sdr_analysis.data, sdr_chosen.data) == []
    assert replay_differences(hdr_analysis.data, hdr_chosen.data) == []
    assert cli_main(["ladder", "hdr-pt", "--replay", "--data-dir", str(tmp_path / "reel")]) == 0
    shown = capsys.readouterr().out
    assert "PER_TITLE ladder of h264-sdr" in shown and "PER_TITLE ladder of hevc-hdr" in shown
    assert shown.count("replay: the same ladder") == 2
    ids = [r["rendition_id"] for r in sdr_rungs + hdr_rungs]
    assert [r["rendition_id"] for r in planned["renditions"]] == ids == result.renditions

    worker = TranscodeWorker(runtime, "w1", Capabilities(False, tools.ffmpeg()), scratch=tmp_path / "scratch", threads=1)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop.is_set,))
    thread.start()
    try:
        run_completion_until(runtime, lambda: finished(runtime, "hdr-pt") is not None, timeout=300)
    finally:
        stop.set()
        thread.join()
    assert finished(runtime, "hdr-pt") == "TitleTranscoded"
    for rung in (sdr_rungs[0], hdr_rungs[-1]):
        key = next(o.key for o in runtime.objects.list(f"titles/hdr-pt/renditions/{rung['rendition_id']}/chunks/"))
        path = tmp_path / "out" / key
        runtime.objects.download(key, path)
        assert count_frames(path) == 48
        stream = ffprobe("-show_streams", "-select_streams", "v", str(path))["streams"][0]
        expected = ("yuv420p10le", "smpte2084") if rung["hdr"] else ("yuv420p", "bt709")
        assert (stream["pix_fmt"], stream["color_transfer"]) == expected


def test_tone_mapped_trials_are_scored_against_the_tone_mapped_master(tmp_path: Path) -> None:
    master = make_master(tmp_path / "hdr.mp4", seconds=2, hdr=True, languages=())
    info = probe(master).video
    assert info is not None and info.hdr
    base = job_template(master, info, tmp_path)
    sdr, hdr = (encode_chunk(replace(base, start_frame=0, frame_count=48, rungs=(rung,),
                                     outputs=(tmp_path / f"out-{rung.rendition_id}.mp4",)), tmp_path)[0]
                for rung in (RungEncode("sdr", "h264", 320, 180, 100_000, crf=18.0),  # one job per group
                             RungEncode("hdr", "hevc", 320, 180, 100_000, hdr=True, crf=18.0)))
    fps, size = Fraction(24), (320, 180)
    right = ssim_of(master, fps, 0, 48, [sdr.path], size, tonemap_lut=base.tonemap_lut)[0]
    wrong = ssim_of(master, fps, 0, 48, [sdr.path], size)[0]  # SDR pixels against PQ code values
    assert right > 0.95 and right - wrong > 0.1, (right, wrong)  # measured 0.990 and 0.854
    ten_bit = ssim_of(master, fps, 0, 48, [hdr.path], size, ten_bit=True)[0]
    assert ten_bit > 0.9 and abs(ten_bit - hdr.ssim) < 0.03  # (x265's own SSIM, luma only, on the grainy master)
