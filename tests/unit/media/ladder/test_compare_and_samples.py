"""Ladder comparison (BD-rate, quality at equal bits), sample picking, and the per-title
decision as events: replaying the analysis gives the same ladder."""

from __future__ import annotations

from fractions import Fraction

import pytest

from reelstream.config import Settings
from reelstream.errors import ConfigError
from reelstream.events.codec import EventCodec
from reelstream.events.model import new_event
from reelstream.events.registry import default_registry
from reelstream.ingest.per_title import policy_for
from reelstream.ingest.plan import analysis_data, ladder_data, per_title_rungs, points_of, policy_of
from reelstream.media.ladder.analyze import Analysis, Sample, _lower_crfs, pick_samples, trial_sizes
from reelstream.media.ladder.compare import bd_rate, quality_at_rate, rate_at_quality
from reelstream.media.ladder.hull import LadderPolicy, RatePoint, choose_rungs
from reelstream.media.transcode.grid import chunk_grid
from reelstream.media.transcode.ladder import DEFAULT_LADDER, Rung, ladder_for
from tests.unit.media.ladder.test_hull import points

ANCHOR = [(400, 30.0), (800, 34.0), (1600, 38.0), (3200, 42.0)]


def test_bd_rate_of_a_ladder_at_half_the_bits_is_minus_half() -> None:
    half = [(k / 2, q) for k, q in ANCHOR]
    assert bd_rate(ANCHOR, half) == pytest.approx(-0.5)
    assert bd_rate(ANCHOR, ANCHOR) == pytest.approx(0.0)
    assert bd_rate(ANCHOR, [(k * 1.2, q) for k, q in ANCHOR]) == pytest.approx(0.2)
    assert bd_rate(ANCHOR, [(100, 10.0), (200, 12.0)]) is None  # no common quality


def test_quality_and_rate_interpolate_on_log_rate() -> None:
    assert quality_at_rate(ANCHOR, 1131.37) == pytest.approx(36.0, abs=0.01)  # halfway in log rate
    assert quality_at_rate(ANCHOR, 10_000) == 42.0  # the top rung is the most a player gets
    assert quality_at_rate(ANCHOR, 300) is None  # cheaper than the lowest rung: nothing to play
    assert rate_at_quality(ANCHOR, 36.0) == pytest.approx(1131.37, abs=0.1)
    # A rung no better than a cheaper one is never picked: it does not shape the curve.
    assert quality_at_rate([*ANCHOR, (2000, 33.0)], 1600) == 38.0


def test_samples_spread_over_the_title_and_hold_the_strongest_cuts() -> None:
    grid = chunk_grid(24 * 20 + 10, Fraction(24))  # ten full 2-s chunks and a short one
    cuts = [(50, 0.4), (300, 0.9), (310, 0.8), (470, 0.95), (481, 0.99)]
    samples = pick_samples(grid, cuts, spread=2, at_cuts=2)
    # spread: chunks 2 and 7; cuts by strength: 481 is in the short last chunk (skipped),
    # 470 -> chunk 9, 300 -> chunk 6; 310 and 50 are beyond the two asked for.
    assert [(s.chunk.index, s.reason) for s in samples] == [(2, "SPREAD"), (6, "SCENE_CHANGE"), (7, "SPREAD"),
                                                            (9, "SCENE_CHANGE")]
    assert [s.chunk.index for s in pick_samples(chunk_grid(48, Fraction(24)), [], spread=3)] == [0]


def test_trial_sizes_follow_the_masters_aspect_and_stop_at_its_height() -> None:
    assert trial_sizes(1920, 800, [240, 480, 720, 1080, 480]) == [(576, 240), (1152, 480), (1728, 720)]


def test_the_policy_comes_from_the_fixed_ladder_kept_for_the_master() -> None:
    policy = policy_for(ladder_for(1280, 720, False))
    assert (policy.floor_height, policy.floor_kbps, policy.ceiling_kbps) == (240, 400, 4500)
    assert policy_for([Rung("hevc", 2160, 15000, hdr=True)]) is None


def test_the_decision_replays_from_its_events() -> None:
    pts = points()
    policy = LadderPolicy(rungs=10, ceiling_kbps=6000)
    grid = chunk_grid(240, Fraction(24))
    analysis = Analysis([Sample(grid[1], "SPREAD"), Sample(grid[3], "SCENE_CHANGE")], pts, [(80, 0.7)])
    analyzed = new_event("TitleComplexityAnalyzed", analysis_data("t1", "titles/t1/master.mp4", analysis, 1234),
                         producer="test")
    chosen = choose_rungs(pts, policy)
    hdr = Rung("hevc", 2160, 15000, hdr=True, width=3840)
    data = ladder_data("t1", policy, pts, chosen, [hdr], analyzed.event_id)
    decided = new_event("TitleLadderChosen", data, producer="test", caused_by=analyzed)
    # Through the codec (which validates against the schemas) and back, as a replay reads them.
    codec = EventCodec(default_registry())
    analyzed2 = codec.decode(codec.encode(analyzed, "reel.catalog"))
    decided2 = codec.decode(codec.encode(decided, "reel.catalog"))
    again = choose_rungs(points_of(analyzed2.data), policy_of(decided2.data))
    rungs, crfs = per_title_rungs(again)
    assert [r["rendition_id"] for r in decided2["rungs"]] == [r.rendition_id for r in rungs] + [hdr.rendition_id]
    assert [r["crf"] for r in decided2["rungs"][:-1]] == [crfs[r.rendition_id] for r in rungs]
    assert decided2["rungs"][-1]["crf"] is None and decided2["analysis_event_id"] == analyzed.event_id
    assert decided2["hull"][0]["kbps"] == 100 and decided2["mode"] == "PER_TITLE"
    assert analyzed2["metric"] == "SSIM" and [s["reason"] for s in analyzed2["samples"]] == ["SPREAD", "SCENE_CHANGE"]


def test_the_ladder_mode_setting_is_checked() -> None:
    assert Settings().ladder_mode == "fixed"
    assert Settings(ladder_mode="per_title").ladder_mode == "per_title"
    with pytest.raises(ConfigError, match="REEL_LADDER_MODE"):
        Settings(ladder_mode="per-title")


def test_default_ladder_is_unchanged_in_fixed_mode() -> None:
    assert len(DEFAULT_LADDER) == 10


def test_simple_content_is_also_tried_below_the_lowest_crf_while_the_ceiling_allows() -> None:
    assert _lower_crfs(18.0, 300.0, 4500) == [12.0, 10.0]  # 600, 1200 kbit/s expected: both fit
    assert _lower_crfs(18.0, 1500.0, 4500) == [12.0]
    assert _lower_crfs(18.0, 3000.0, 4500) == []  # complex content: CRF 18 already spends the ceiling


def test_reel_ladder_replay_finds_a_ladder_that_does_not_follow_from_its_analysis() -> None:
    from reelstream.cli.ladder import render, replay_differences

    pts, policy = points(), LadderPolicy(rungs=10, ceiling_kbps=6000)
    grid = chunk_grid(240, Fraction(24))
    analyzed = analysis_data("t1", "m", Analysis([Sample(grid[0], "SPREAD")], pts), 1)
    chosen = ladder_data("t1", policy, pts, choose_rungs(pts, policy), [], "a1")
    assert replay_differences(analyzed, chosen) == []
    top = chosen["rungs"][-1]
    chosen["rungs"][-1] = {**top, "crf": top["crf"] - 3}  # a calibration to the ceiling may lower the top CRF
    assert replay_differences(analyzed, chosen) == []
    middle = chosen["rungs"][4]
    chosen["rungs"][4] = {**middle, "crf": middle["crf"] + 1}
    assert replay_differences(analyzed, chosen) == [
        f"rung 4 {middle['rendition_id']}: replayed CRF {middle['crf']}, recorded {middle['crf'] + 1}"]
    count = len(chosen["rungs"])
    chosen["rungs"].pop(2)
    assert replay_differences(analyzed, chosen) == [f"{count} rungs replayed, {count - 1} recorded"]
    assert "PER_TITLE ladder of h264-sdr, quality metric SSIM" in render(chosen)


def test_an_hdr_master_gets_a_policy_per_encoder_group_within_8_to_12_rungs_in_all() -> None:
    fixed = ladder_for(3840, 2160, True)
    sdr, hdr = policy_for(fixed, group="h264-sdr"), policy_for(fixed, group="hevc-hdr")
    assert sdr is not None and hdr is not None
    assert (sdr.rungs, sdr.min_rungs, sdr.max_rungs) == (8, 6, 10)  # two HDR rungs: 10..12 in all
    assert (hdr.rungs, hdr.min_rungs, hdr.max_rungs) == (2, 1, 2)
    assert (hdr.floor_height, hdr.floor_kbps, hdr.ceiling_kbps) == (1440, 10000, 15000)
    assert [(f.height, f.kbps) for f in hdr.fixed_rungs] == [(1440, 10000), (2160, 15000)]
    assert sdr.ceiling_kbps == 8000 and len(sdr.fixed_rungs) == 8
    # A 1440p HDR master keeps one HDR rung: one chosen on the hull of its trials.
    one = policy_for(ladder_for(2560, 1440, True), group="hevc-hdr")
    assert one is not None and one.rungs == 1
    curve = [RatePoint(2560, 1440, crf, kbps, 1 - 10 ** (-db / 10)) for crf, kbps, db in
             ((32, 3000, 14.0), (26, 6000, 16.0), (20, 12000, 17.5))]
    (rung,) = choose_rungs(curve, one)
    assert rung.height == 1440 and rung.cap_kbps == 10000 and rung.fixed  # the fixed rung itself
