"""Per-title ladders end to end on the embedded runtime, with real ffmpeg: a short master is
measured, its ladder chosen on the hull, both recorded as events, planned into jobs with
the chosen CRFs and caps, encoded by a worker, completed rung by rung, and packaged with
every rung as a track whose segment-size sidecar (what a size-planning ABR reads) holds
the real, varying sizes of its segments."""

from __future__ import annotations

import threading
from fractions import Fraction
from pathlib import Path

import pytest

from reelstream.cli import main as cli_main
from reelstream.config import Settings
from reelstream.ingest.plan import per_title_rungs, points_of, policy_of
from reelstream.ingest.service import IngestService
from reelstream.media import tools
from reelstream.media.ladder.analyze import TRIAL_CRFS
from reelstream.media.ladder.hull import choose_rungs
from reelstream.media.package import sizes
from reelstream.media.package.packager import package_title
from reelstream.media.probe import count_frames
from reelstream.media.transcode.ladder import Rung
from reelstream.processors.packaging.logic import plan
from reelstream.runtime import Runtime
from reelstream.workers.capabilities import Capabilities
from reelstream.workers.transcode import TranscodeWorker
from tests.functional.test_transcode_embedded import events, finished, run_completion_until
from tests.support.media import make_master, title_metadata, write_metadata

# The fixed ladder the per-title one replaces: its lowest rung is the floor, its top rate the ceiling.
LADDER = (Rung("h264", 144, 150), Rung("h264", 180, 600))


def test_a_per_title_ladder_is_measured_chosen_recorded_planned_and_encoded(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runtime = Runtime(Settings(data_dir=tmp_path / "reel", ladder_mode="per_title"))
    (tmp_path / "studio").mkdir()
    master = make_master(tmp_path / "studio" / "film.mp4", seconds=4, languages=("en",))
    metadata = write_metadata(tmp_path / "studio" / "title.json", title_metadata("pt-1", master, languages=("en",)))
    result = IngestService(runtime, LADDER).ingest(master, metadata)

    catalog = [e for e in events(runtime, "reel.catalog") if e["title_id"] == "pt-1"]
    kinds = [e.type for e in catalog]
    assert kinds[kinds.index("IngestValidated"):] == ["IngestValidated", "TitleComplexityAnalyzed",
                                                      "TitleLadderChosen", "TranscodePlanned"]
    validated, analyzed, chosen, planned = catalog[-4:]
    assert analyzed.header.causation_id == validated.event_id
    assert chosen.header.causation_id == analyzed.event_id and chosen["analysis_event_id"] == analyzed.event_id
    assert planned.header.causation_id == chosen.event_id

    # The measured points: both trial resolutions at every trial CRF, scored with SSIM.
    assert analyzed["metric"] == "SSIM" and analyzed["samples"]
    tried = {(p["height"], p["crf"]) for p in analyzed["points"]}
    base = {(h, c) for h in (144, 180) for c in TRIAL_CRFS}
    assert base <= tried and all(h == 180 and c < min(TRIAL_CRFS) for h, c in tried - base)
    for height in (144, 180):  # lower CRF: more bits and a better score
        curve = sorted((p for p in analyzed["points"] if p["height"] == height), key=lambda p: -p["crf"])
        assert [p["kbps"] for p in curve] == sorted(p["kbps"] for p in curve)
        assert curve[-1]["score"] > curve[0]["score"] > 0.5

    # The decision: 8..12 rungs, the floor at 144p within 150 kbit/s, none above 600, and
    # replaying the analysis through the hull gives the same ladder.
    rungs = chosen["rungs"]
    assert chosen["mode"] == "PER_TITLE" and 8 <= len(rungs) <= 12
    assert rungs[0]["height"] == 144 and rungs[0]["cap_kbps"] <= 150
    assert all(r["cap_kbps"] <= 600 and r["crf"] is not None for r in rungs)
    # Replaying the analysis gives the same rungs and CRFs, but for the CRFs calibrations set:
    # the top rung's (capped at the ceiling, its CRF may be lowered by a calibration to it)
    # and those of the fixed rungs kept as rungs (their CRF calibrated to their rate).
    replayed, replayed_crfs = per_title_rungs(choose_rungs(points_of(analyzed.data), policy_of(chosen.data)))
    assert [r["rendition_id"] for r in rungs][:-1] == [r.rendition_id for r in replayed][:-1]
    assert rungs[-1]["cap_kbps"] == 600 and rungs[-1]["height"] == replayed[-1].height
    for r in rungs[:-1]:
        if not r["fixed_rung"]:
            assert r["crf"] == replayed_crfs[r["rendition_id"]]
    if not rungs[-1]["fixed_rung"]:
        assert rungs[-1]["crf"] <= replayed_crfs[replayed[-1].rendition_id]
    # The fixed ladder is in the policy, and a fixed rung kept is that rung (height and cap).
    assert [(f["height"], f["kbps"]) for f in chosen["policy"]["fixed_rungs"]] == [(144, 150), (180, 600)]
    assert all((r["height"], r["cap_kbps"]) in {(144, 150), (180, 600)} for r in rungs if r["fixed_rung"])
    crfs = {r["rendition_id"]: r["crf"] for r in rungs}
    assert cli_main(["ladder", "pt-1", "--replay", "--data-dir", str(tmp_path / "reel")]) == 0
    shown = capsys.readouterr().out
    assert "replay: the same ladder" in shown and all(r in shown for r in crfs)
    assert [r["rendition_id"] for r in planned["renditions"]] == result.renditions == list(crfs)
    assert [r["bitrate_kbps"] for r in planned["renditions"]] == [r["cap_kbps"] for r in rungs]

    # The jobs encode every rung at its chosen CRF under its cap (no calibration ran).
    jobs = [e for e in events(runtime, "reel.transcode.jobs") if e.type == "ChunkTranscodeRequested"]
    assert len(jobs) == 2
    for job in jobs:
        assert {r["rendition_id"]: r["crf"] for r in job["rungs"]} == crfs
        assert {r["rendition_id"]: r["bitrate_kbps"] for r in job["rungs"]} == {
            r["rendition_id"]: r["cap_kbps"] for r in rungs}

    worker = TranscodeWorker(runtime, "w1", Capabilities(False, tools.ffmpeg()), scratch=tmp_path / "scratch", threads=1)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop.is_set,))
    thread.start()
    try:
        run_completion_until(runtime, lambda: finished(runtime, "pt-1") is not None, timeout=240)
    finally:
        stop.set()
        thread.join()
    assert finished(runtime, "pt-1") == "TitleTranscoded"
    completed = {e["rendition_id"]: e for e in events(runtime, "reel.catalog") if e.type == "RenditionCompleted"}
    assert set(completed) == set(crfs)
    for rung in rungs:
        keys = [o.key for o in runtime.objects.list(f"titles/pt-1/renditions/{rung['rendition_id']}/chunks/")]
        assert len(keys) == 2
        path = tmp_path / "out" / keys[0]
        runtime.objects.download(keys[0], path)
        assert count_frames(path) == 48
        # Capped VBR: the encoder's VBV (maxrate 1.1x the cap, buffer 2x) bounds a 2-s chunk.
        assert completed[rung["rendition_id"]]["avg_bitrate_kbps"] <= rung["cap_kbps"] * 2.1

    # Packaging takes the per-title rungs as they are: a track each, sizes in the sidecar.
    transcoded = next(e for e in events(runtime, "reel.catalog") if e.type == "TitleTranscoded")
    request = plan(transcoded, ["clear"])[0]
    package = package_title(runtime.objects, "pt-1", request.renditions, request.audio, request.subtitles, "clear",
                            None, package_id=request.package_id, workers=1)  # type: ignore[arg-type]
    video = {t.track_id: t for t in package.tracks if t.kind == "video"}
    assert list(video) == [r["rendition_id"] for r in rungs]
    for track_id, track in video.items():
        sidecar = sizes.parse(runtime.objects.get(f"{package.storage_prefix}{track_id}/{sizes.NAME}"), track_id)
        assert list(sidecar.sizes) == [s.size for s in track.segments] and len(sidecar.sizes) == 2
    assert any(len(set(sidecar_sizes)) > 1 for sidecar_sizes in
               ([s.size for s in t.segments] for t in video.values()))  # variable-size segments


def test_the_analysis_samples_the_chunk_where_the_shot_changes(tmp_path: Path) -> None:
    from reelstream.media.ladder.analyze import pick_samples, scene_changes
    from reelstream.media.transcode.grid import chunk_grid
    from tests.support.media import ffmpeg

    master = tmp_path / "cut.mp4"  # 6 s: bars, then at 3.5 s (frame 84, in chunk 1) a cut to testsrc2
    ffmpeg("-f", "lavfi", "-i", "smptebars=s=320x180:r=24:d=3.5", "-f", "lavfi", "-i", "testsrc2=s=320x180:r=24:d=2.5",
           "-filter_complex", "[0:v][1:v]concat=n=2:v=1[v]", "-map", "[v]", "-c:v", "libx264", "-preset", "ultrafast",
           "-g", "48", "-pix_fmt", "yuv420p", str(master))
    cuts = scene_changes(master, Fraction(24))
    assert [frame for frame, _ in cuts] == [84] and cuts[0][1] > 0.5
    samples = pick_samples(chunk_grid(144, Fraction(24)), cuts, spread=1, at_cuts=1)
    assert [(s.chunk.index, s.reason) for s in samples] == [(1, "SPREAD")]  # the middle chunk holds the cut
    samples = pick_samples(chunk_grid(240, Fraction(24)), [(200, 0.8)], spread=1, at_cuts=1)
    assert [(s.chunk.index, s.reason) for s in samples] == [(2, "SPREAD"), (4, "SCENE_CHANGE")]
