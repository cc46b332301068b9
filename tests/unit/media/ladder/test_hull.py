"""The rate–quality hull and the rungs chosen on it, on hand-made points (no media)."""

from __future__ import annotations

import itertools
import math

import pytest

from reelstream.errors import ConfigError
from reelstream.media.ladder.compare import quality_at_rate
from reelstream.media.ladder.hull import (
    FixedRung,
    LadderPolicy,
    NotEnoughPoints,
    RatePoint,
    choose_rungs,
    convex_hull,
    ssim_db,
)

WIDTH = {240: 426, 480: 854, 720: 1280}
# (crf, kbit/s, SSIM dB) per height: concave curves that cross, as real ones do.
CURVES = {240: [(36, 100, 10.0), (30, 200, 13.0), (24, 400, 15.0), (18, 800, 16.0)],
          480: [(36, 300, 11.0), (30, 600, 16.5), (24, 1200, 19.0), (18, 2400, 20.5)],
          720: [(36, 800, 12.0), (30, 1600, 18.0), (24, 3200, 22.0), (18, 6400, 24.0)]}


def ssim(db: float) -> float:
    return 1 - 10 ** (-db / 10)


def points(curves: dict[int, list[tuple[float, float, float]]] = CURVES) -> list[RatePoint]:
    return [RatePoint(WIDTH[h], h, crf, kbps, ssim(db), peak_kbps=kbps * 1.3)
            for h, curve in curves.items() for crf, kbps, db in curve]


def test_the_hull_is_the_upper_concave_envelope_across_resolutions() -> None:
    hull = convex_hull(points())
    assert [(p.height, p.kbps) for p in hull] == [(240, 100), (240, 200), (240, 400), (480, 600), (480, 1200),
                                                  (720, 3200), (720, 6400)]
    slopes = [(b.db - a.db) / (b.kbps - a.kbps) for a, b in itertools.pairwise(hull)]
    assert slopes == sorted(slopes, reverse=True)  # concave: each step buys less quality per bit
    for p in points():  # every trial off the hull is beaten by a mix of two hull points
        if p in hull:
            continue
        below = [h for h in hull if h.kbps <= p.kbps][-1]
        above = next((h for h in hull if h.kbps > p.kbps), None)
        if above is None:
            assert p.db <= below.db
        else:
            t = (p.kbps - below.kbps) / (above.kbps - below.kbps)
            assert p.db < below.db + t * (above.db - below.db)


def test_the_hull_stops_at_the_best_quality_and_ignores_zero_rates() -> None:
    pts = points() + [RatePoint(1280, 720, 12, 12800, ssim(23.5)), RatePoint(426, 240, 51, 0, ssim(1))]
    assert convex_hull(pts)[-1].kbps == 6400  # dearer and worse: not on the rising hull


def test_ten_rungs_at_even_quality_steps_from_the_floor_to_the_ceiling() -> None:
    rungs = choose_rungs(points(), LadderPolicy(rungs=10, floor_kbps=600, ceiling_kbps=8000))
    assert len(rungs) == 10
    dbs = [ssim_db(r.expected_ssim) for r in rungs]
    assert dbs[0] == pytest.approx(15.0, abs=0.01)  # 240p at a mean of 400 kbit/s: the 600 cap / 1.5
    assert dbs[-1] == pytest.approx(24.0, abs=0.01)  # the best trial within 8 Mbit/s
    assert [round(b - a, 2) for a, b in itertools.pairwise(dbs)] == [1.0] * 9
    floor = rungs[0]
    assert (floor.height, floor.crf, floor.cap_kbps) == (240, 24.0, 600)
    # The hull segment 240p@400 - 480p@600 holds 16 dB: 480p reaches it cheaper than 240p (800 kbit/s).
    assert rungs[1].height == 480 and rungs[1].expected_kbps < 600
    assert [r.height for r in rungs] == [240, 480, 480, 480, 480, 480, 720, 720, 720, 720]
    assert all(a.expected_kbps < b.expected_kbps for a, b in itertools.pairwise(rungs))
    # Caps: 1.5 x the mean and 1.5 x the busiest sample (1.3 x the mean here), within the ceiling.
    caps = [min(8000, round(r.expected_kbps * 1.3 * 1.5)) for r in rungs[1:]]
    assert caps[-2:] == [8000, 8000]
    caps[-2] = 7999  # two 720p rungs at the ceiling: distinct rendition ids, the lower one just under
    assert [r.cap_kbps for r in rungs[1:]] == caps
    # CRFs interpolated between the trials of the rung's resolution: 480p at 17 dB lies
    # between CRF 30 (16.5 dB) and 24 (19 dB).
    assert 24 < rungs[2].crf < 30 and rungs[2].height == 480


def test_the_ceiling_bounds_the_top_rung_and_every_cap() -> None:
    rungs = choose_rungs(points(), LadderPolicy(rungs=8, ceiling_kbps=3200))
    assert ssim_db(rungs[-1].expected_ssim) == pytest.approx(22.0, abs=0.01)  # 720p CRF 24 at 3200
    assert max(r.cap_kbps for r in rungs) == 3200
    # Eight at even quality steps, and one more where two were over 1.6x apart in rate.
    assert len(rungs) == 9
    assert all(b.expected_kbps / a.expected_kbps <= 1.6 for a, b in itertools.pairwise(rungs))


def test_rungs_are_added_where_the_rate_steps_too_far() -> None:
    even = choose_rungs(points(), LadderPolicy(rungs=8, ceiling_kbps=8000, max_rate_step=100))
    assert max(b.expected_kbps / a.expected_kbps for a, b in itertools.pairwise(even)) > 1.6
    filled = choose_rungs(points(), LadderPolicy(rungs=8, ceiling_kbps=8000))
    assert len(even) < len(filled) <= 12
    assert {(r.height, r.crf) for r in even} <= {(r.height, r.crf) for r in filled}
    assert all(b.expected_kbps / a.expected_kbps <= 1.6 for a, b in itertools.pairwise(filled))
    assert len(choose_rungs(points(), LadderPolicy(rungs=8, ceiling_kbps=8000, max_rungs=9))) == 9


def test_the_floor_rung_stops_where_a_larger_resolution_gets_cheaper() -> None:
    # 480p reaches 13 dB for less than 240p does (200 kbit/s): a 240p floor at 15 dB (400) would
    # cost more than the 480p rung above it.
    cheap_480 = {**CURVES, 480: [(42, 150, 11.0), (36, 180, 13.5), (30, 600, 16.5), (24, 1200, 19.0)]}
    rungs = choose_rungs(points(cheap_480), LadderPolicy(floor_kbps=600, ceiling_kbps=8000))
    assert rungs[0].height == 240 and ssim_db(rungs[0].expected_ssim) < 13.0
    assert rungs[0].expected_kbps < rungs[1].expected_kbps


def test_a_floor_rung_dearer_than_the_floor_is_capped_to_it() -> None:
    # Noisy content: 240p needs 500 kbit/s even at CRF 36.
    dear = {h: [(c, k * 5, q) for c, k, q in curve] for h, curve in CURVES.items()}
    rungs = choose_rungs(points(dear), LadderPolicy(ceiling_kbps=40000))
    assert rungs[0].height == 240 and rungs[0].crf == 36 and rungs[0].cap_kbps == 400


def test_simple_content_gets_cheap_rungs() -> None:
    # A slide: every resolution is near-transparent for a few hundred kbit/s.
    easy = {h: [(c, k / 20, q + 15) for c, k, q in curve] for h, curve in CURVES.items()}
    rungs = choose_rungs(points(easy), LadderPolicy(ceiling_kbps=8000))
    assert max(r.cap_kbps for r in rungs) <= 800  # a tenth of the ceiling
    assert ssim_db(rungs[-1].expected_ssim) == pytest.approx(39.0, abs=0.01)


def test_rungs_at_one_height_get_distinct_caps_and_rendition_ids() -> None:
    flat = {240: [(36, 100, 10.0), (30, 101, 13.0), (24, 102, 15.0), (18, 103, 16.0)]}
    rungs = choose_rungs(points(flat), LadderPolicy(rungs=8, floor_kbps=50, ceiling_kbps=8000))
    caps = [r.cap_kbps for r in rungs]
    assert caps == sorted(set(caps))


def test_missing_floor_resolution_and_bad_policies_are_refused() -> None:
    with pytest.raises(NotEnoughPoints, match="no trial at the floor height 240p"):
        choose_rungs([p for p in points() if p.height != 240], LadderPolicy())
    with pytest.raises(ConfigError, match="rungs must be 8..12"):
        choose_rungs(points(), LadderPolicy(rungs=13))
    with pytest.raises(ConfigError, match="floor_kbps"):
        LadderPolicy(floor_kbps=9000, ceiling_kbps=8000).check()


def test_ssim_db() -> None:
    assert ssim_db(0.99) == pytest.approx(20.0)
    assert ssim_db(0.999) == pytest.approx(30.0)
    assert ssim_db(1.0) == 60.0
    assert math.isclose(ssim_db(0.0), 0.0)


def test_a_floor_rung_dominated_by_a_larger_resolutions_cheapest_trial_is_not_chosen() -> None:
    # Grainy content: 360p at CRF 36 (120 kbit/s, 10.1 dB) beats anything 240p does above 100 kbit/s.
    grainy = {240: [(36, 100, 9.5), (30, 160, 9.7), (24, 260, 9.83), (18, 420, 9.9)],
              480: [(36, 120, 10.1), (30, 200, 10.5), (24, 340, 10.9), (18, 600, 11.2)]}
    rungs = choose_rungs(points(grainy), LadderPolicy(rungs=8, floor_kbps=400, ceiling_kbps=4500))
    assert rungs[0].height == 240 and rungs[0].expected_kbps <= 120
    assert all(a.expected_kbps < b.expected_kbps for a, b in itertools.pairwise(rungs))


def test_a_rung_hardly_cheaper_than_the_one_above_at_its_height_is_dropped() -> None:
    # Still content: 720p at CRF 36 beats every lower resolution, so the low targets all land
    # on 720p's cheapest trial; rungs within 5 % of each other are one rung.
    # Targets 19.0 and 20.1 dB both land on 720p at about CRF 36 (60 and 60.5 kbit/s).
    still = {240: [(36, 20, 14.0), (30, 25, 15.5), (24, 30, 16.7), (18, 40, 17.9)],
             720: [(36, 60, 20.1), (30, 90, 22.0), (24, 130, 26.0), (18, 180, 28.0)]}
    rungs = choose_rungs(points(still), LadderPolicy(rungs=10, floor_kbps=400, ceiling_kbps=4500))
    assert [(r.height, r.crf) for r in rungs[:3]] == [(240, 18.0), (720, 35.86), (720, 32.32)]  # CRF 36 dropped
    assert all(b.expected_kbps >= a.expected_kbps * 1.05 for a, b in itertools.pairwise(rungs) if a.height == b.height)
    assert len(rungs) == 9


def test_a_gap_whose_middle_rung_would_be_no_rung_of_its_own_is_left() -> None:
    # 720p flattens between 150 and 160 kbit/s: the rung between 95 and 159 kbit/s would cost
    # 155, under 5 % less than the one above; it is not added (this once looped forever).
    flat = {240: [(36, 20, 14.0), (30, 25, 15.5), (24, 30, 16.7), (18, 40, 17.9)],
            720: [(36, 60, 20.0), (30, 150, 21.0), (24, 160, 26.0), (18, 400, 27.0)]}
    rungs = choose_rungs(points(flat), LadderPolicy(rungs=8, floor_kbps=400, ceiling_kbps=4500))
    # (the eighth rung, 256, is added in the next widest gap: a ladder keeps at least min_rungs)
    assert [round(r.expected_kbps) for r in rungs] == [40, 60, 95, 159, 220, 256, 297, 400]


# The fixed ladder these curves' title would get: two rungs on the hull (480p/1200, 720p/3200)
# and two off it (240p/800: 480p is better there; 720p/1600: 480p is better there too).
FIXED = (FixedRung(426, 240, 800), FixedRung(854, 480, 1200), FixedRung(1280, 720, 1600),
         FixedRung(1280, 720, 3200))


def predicted(curves: dict[int, list[tuple[float, float, float]]], rung: FixedRung) -> float:
    """The fixed rung's quality at its bitrate on its resolution's trials (log-rate interpolation)."""
    curve = [(kbps, db) for _, kbps, db in curves[rung.height]]
    return quality_at_rate(curve, rung.kbps) or min(db for _, db in curve)


@pytest.mark.parametrize("curves", [CURVES, {h: [(c, k / 20, q + 15) for c, k, q in v] for h, v in CURVES.items()},
                                    {h: [(c, k * 5, q) for c, k, q in v] for h, v in CURVES.items()}],
                         ids=["mid", "easy", "dear"])
def test_at_every_fixed_rungs_bitrate_the_per_title_ladder_is_at_least_as_good(
        curves: dict[int, list[tuple[float, float, float]]]) -> None:
    policy = LadderPolicy(rungs=10, floor_kbps=800, ceiling_kbps=8000, fixed_rungs=FIXED)
    rungs = choose_rungs(points(curves), policy)
    ladder = [(r.expected_kbps, ssim_db(r.expected_ssim)) for r in rungs]
    for f in FIXED:
        ours = quality_at_rate(ladder, f.kbps)
        assert ours is not None and ours >= predicted(curves, f) - 1e-3, f  # (SSIM kept to 8 decimals)
    assert 8 <= len(rungs) <= 12
    assert all(a.expected_kbps < b.expected_kbps and a.height <= b.height for a, b in itertools.pairwise(rungs))
    ids = [(r.height, r.cap_kbps) for r in rungs]
    assert len(set(ids)) == len(ids)


def test_a_fixed_rung_on_the_hull_between_two_rungs_becomes_a_rung_of_its_own() -> None:
    # Without anchors the ladder straddles 720p/3200 with two 720p rungs: the chord between
    # them is under the 720p curve, so the fixed rung is better at its own bitrate.
    plain = choose_rungs(points(), LadderPolicy(rungs=8, floor_kbps=800, ceiling_kbps=8000, max_rate_step=100))
    chord = [(r.expected_kbps, ssim_db(r.expected_ssim)) for r in plain]
    assert 3200 not in [r.expected_kbps for r in plain]
    assert quality_at_rate(chord, 3200) < 22.0  # type: ignore[operator]
    anchored = choose_rungs(points(), LadderPolicy(rungs=8, floor_kbps=800, ceiling_kbps=8000, max_rate_step=100,
                                                   fixed_rungs=FIXED))
    kept = [r for r in anchored if r.fixed]
    assert (kept[-1].height, kept[-1].cap_kbps, kept[-1].expected_kbps, kept[-1].crf) == (720, 3200, 3200, 24.0)
    assert ssim_db(kept[-1].expected_ssim) == pytest.approx(22.0, abs=1e-3)
    # The rungs it displaces: any within 20 % of its rate.
    assert all(not 3200 / 1.2 < r.expected_kbps < 3200 * 1.2 for r in anchored if not r.fixed)


def test_a_fixed_rung_the_ladder_clearly_beats_is_not_added() -> None:
    # 240p at 800 kbit/s reaches 16 dB; the hull there (480p) about 17.5: no anchor.
    rungs = choose_rungs(points(), LadderPolicy(rungs=10, floor_kbps=800, ceiling_kbps=8000, fixed_rungs=FIXED))
    assert not any(r.fixed and r.height == 240 for r in rungs)
    assert not any(r.fixed and r.cap_kbps == 1600 for r in rungs)
    # A margin larger than the saving there (480p reaches 16 dB for about 560 kbit/s) makes it one.
    wide = choose_rungs(points(), LadderPolicy(rungs=10, floor_kbps=800, ceiling_kbps=8000, fixed_rungs=FIXED,
                                               anchor_margin=0.5))
    assert any(r.fixed and r.height == 240 and r.cap_kbps == 800 for r in wide)


def test_anchors_are_never_trimmed_and_the_ladder_keeps_at_most_max_rungs() -> None:
    loose = choose_rungs(points(), LadderPolicy(rungs=8, floor_kbps=800, ceiling_kbps=8000, fixed_rungs=FIXED,
                                                anchor_margin=0.99))
    assert len(loose) > 6
    rungs = choose_rungs(points(), LadderPolicy(rungs=6, min_rungs=4, max_rungs=6, floor_kbps=800,
                                                ceiling_kbps=8000, fixed_rungs=FIXED, anchor_margin=0.99))
    assert len(rungs) == 6
    assert {(r.height, r.cap_kbps) for r in rungs if r.fixed} == {(f.height, f.kbps) for f in FIXED}


def _family(rate_scale: float, quality_shift: float, flatten: float) -> list[RatePoint]:
    """Concave curves for the default ladder's 720p-master resolutions: each height's quality
    rises with log rate and saturates higher the larger it is; larger ones start dearer."""
    heights = {240: 426, 360: 640, 480: 854, 540: 960, 720: 1280}
    out = []
    for i, (height, width) in enumerate(heights.items()):
        for crf, step in ((36, 0), (30, 1), (24, 2), (18, 3), (12, 4)):
            kbps = rate_scale * 150 * (1.5 ** i) * 2 ** step
            db = quality_shift + 6 + 1.6 * i * flatten + (3.5 + 0.6 * i) * (1 - 0.8 ** (step + 1)) * 2
            out.append(RatePoint(width, height, crf, round(kbps, 1), ssim(db)))
    return out


@pytest.mark.parametrize("rate_scale", [0.05, 0.3, 1.0, 3.0])
@pytest.mark.parametrize("flatten", [0.2, 1.0])
def test_the_default_ladder_is_never_beaten_at_its_rungs_bitrates_on_many_curves(rate_scale: float,
                                                                                  flatten: float) -> None:
    from reelstream.ingest.per_title import policy_for
    from reelstream.media.transcode.ladder import ladder_for

    policy = policy_for(ladder_for(1280, 720, False))
    assert policy is not None
    pts = _family(rate_scale, 0.0, flatten)
    rungs = choose_rungs(pts, policy)
    assert 8 <= len(rungs) <= 12
    assert all(a.expected_kbps < b.expected_kbps and a.height <= b.height for a, b in itertools.pairwise(rungs))
    assert len({(r.height, r.cap_kbps) for r in rungs}) == len(rungs)
    assert rungs[-1].cap_kbps == policy.ceiling_kbps or rungs[-1].fixed
    ladder = [(r.expected_kbps, ssim_db(r.expected_ssim)) for r in rungs]
    for f in policy.fixed_rungs:
        curve = [(p.kbps, p.db) for p in pts if p.height == f.height]
        fixed_db = quality_at_rate(curve, f.kbps)
        if fixed_db is None:
            continue  # even CRF 36 costs more: the cap holds the rung under anything measured
        spent = min(f.kbps, max(k for k, _ in curve))
        ours = quality_at_rate(ladder, spent)
        assert ours is not None and ours >= fixed_db - 1e-3, (f, ours, fixed_db)


@pytest.mark.parametrize("flatten", [1.0, 1.5])
def test_a_title_too_dear_for_even_steps_still_gets_at_least_eight_rungs(flatten: float) -> None:
    # Heavy grain: 240p needs 750 kbit/s at CRF 36, and the even quality steps land under
    # 1.6x apart in rate, so no gap asks for a rung; rungs are added until the ladder has 8.
    from reelstream.ingest.per_title import policy_for
    from reelstream.media.transcode.ladder import ladder_for

    policy = policy_for(ladder_for(1280, 720, False))
    assert policy is not None
    rungs = choose_rungs(_family(5.0, 0.0, flatten), policy)
    assert policy.min_rungs <= len(rungs) <= policy.max_rungs
    assert all(a.expected_kbps < b.expected_kbps and a.height <= b.height for a, b in itertools.pairwise(rungs))
    assert len({(r.height, r.cap_kbps) for r in rungs}) == len(rungs)
