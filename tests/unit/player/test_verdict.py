"""The bootstrap over traces that says how firm a target's verdict is."""

from __future__ import annotations

import pytest

from reelstream.player.qoe import SessionMetrics
from reelstream.player.verdict import TraceTotals, target_odds, totals_by_recording, totals_by_trace

NAMES = [f"trace_{i:02d}" for i in range(20)]


def flat(qoe: float, stall: float = 0.0) -> dict[str, TraceTotals]:
    return {name: TraceTotals(qoe, stall) for name in NAMES}


def session(trace: str, qoe: float, stall: float) -> SessionMetrics:
    return SessionMetrics(trace=trace, algorithm="x", qoe={"lin": qoe}, stall_s=stall,
                          play_s=188.0, startup_s=1.0, avg_bitrate_kbps=1000.0, switches=0,
                          smoothness_mbps=0.0)


def test_sessions_are_summed_per_trace() -> None:
    totals = totals_by_trace([session("a", 1.0, 0.5), session("b", 2.0, 0.0),
                              session("a", 0.5, 1.0)])
    assert totals == {"a": TraceTotals(1.5, 1.5), "b": TraceTotals(2.0, 0.0)}


def test_a_uniform_lead_holds_on_every_draw() -> None:
    odds = target_odds(flat(1.1), flat(1.0), flat(0.8), NAMES)
    assert odds.qoe_ratio_met == odds.rebuffer_met == odds.both_met == 1.0
    assert odds.qoe_ratio_low == pytest.approx(1.1)
    assert odds.qoe_ratio_high == pytest.approx(1.1)


def test_one_stalling_trace_fails_every_draw_that_contains_it() -> None:
    """A set of 20 drawn with replacement misses a given trace with probability
    (19/20)^20 = 0.358: only those draws meet the rebuffer target."""
    ours = {**flat(1.2), NAMES[3]: TraceTotals(1.2, 2.0)}
    odds = target_odds(ours, flat(1.0), flat(0.8, stall=0.0), NAMES, draws=8000, seed=1)
    assert odds.rebuffer_met == pytest.approx((19 / 20) ** 20, abs=0.02)
    assert odds.qoe_ratio_met == 1.0
    assert odds.both_met == odds.rebuffer_met


def test_a_lead_carried_by_one_trace_is_uncertain() -> None:
    """RobustMPC is ahead on 19 traces and far behind on one: the set-level ratio is over
    1.05, and only the resampled sets that keep that trace are."""
    robust = {**flat(1.0), NAMES[0]: TraceTotals(-1.0, 0.0)}
    ours = flat(0.95)
    whole = sum(t.qoe_lin for t in ours.values()) / sum(t.qoe_lin for t in robust.values())
    assert whole > 1.05
    odds = target_odds(ours, robust, flat(0.5), NAMES, seed=2)
    assert odds.qoe_ratio_met == pytest.approx(1 - (19 / 20) ** 20, abs=0.03)
    assert odds.qoe_ratio_low == pytest.approx(0.95)
    assert odds.qoe_ratio_high > 1.05


def test_the_same_seed_gives_the_same_odds() -> None:
    ours = {**flat(1.05), NAMES[5]: TraceTotals(0.2, 3.0)}
    args = (ours, flat(1.0), flat(0.5), NAMES)
    assert target_odds(*args, seed=4) == target_odds(*args, seed=4)


def test_traces_missing_an_algorithm_or_no_traces_are_refused() -> None:
    with pytest.raises(ValueError, match="trace_07"):
        target_odds({k: v for k, v in flat(1.0).items() if k != "trace_07"}, flat(1.0),
                    flat(1.0), NAMES)
    with pytest.raises(ValueError, match="no traces"):
        target_odds(flat(1.0), flat(1.0), flat(1.0), [])


def recording(name: str) -> str:
    return name.rsplit("_", 1)[0]


def test_windows_of_one_recording_are_summed_together() -> None:
    totals = {"rec_a_0": TraceTotals(1.0, 0.5), "rec_a_60": TraceTotals(2.0, 0.0),
              "rec_b_0": TraceTotals(3.0, 1.0)}
    assert totals_by_recording(totals, recording) == {"rec_a": TraceTotals(3.0, 0.5),
                                                      "rec_b": TraceTotals(3.0, 1.0)}


def test_a_lead_from_one_recording_cut_into_many_windows_is_less_firm_over_recordings() -> None:
    # Ten windows of one recording carry the whole lead; nine other recordings trail a
    # little. Drawn file by file, the lead is nearly always in the set; drawn by recording,
    # the one recording is left out of about a third of the sets.
    ours = {f"lead_{w}": TraceTotals(2.0, 0.0) for w in range(10)}
    ours.update({f"r{i}_0": TraceTotals(0.95, 0.0) for i in range(9)})
    robust = {name: TraceTotals(1.0, 0.0) for name in ours}
    bola = {name: TraceTotals(0.5, 0.0) for name in ours}
    by_file = target_odds(ours, robust, bola, list(ours), seed=3)
    pooled = [totals_by_recording(t, recording) for t in (ours, robust, bola)]
    by_recording = target_odds(*pooled, list(pooled[0]), seed=3)
    assert by_file.qoe_ratio_met > 0.99
    assert 0.5 < by_recording.qoe_ratio_met < 0.8
