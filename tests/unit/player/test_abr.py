"""Each ABR algorithm on hand-built situations: collapse, recovery, full buffer, start."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

import pytest

from reelstream.player.abr import (
    AbrAlgorithm,
    AlwaysLowest,
    Bola,
    BufferBased,
    Mpc,
    Observation,
    ReelStreamMpc,
    RobustMpc,
    ThroughputRule,
)
from reelstream.player.abr.interface import highest_rung_at_most
from reelstream.player.abr.mpc import prediction_errors, robust_prediction
from reelstream.player.abr.reelstream import (
    ReelStreamTuning,
    cautious_prediction,
    collapse_throughput,
    level_prediction,
    quantile,
    relative_collapse,
    scenario_costs,
    tail_cap,
    volatility,
)
from reelstream.player.abr.throughput import harmonic_mean, harmonic_prediction

Obs = Callable[..., Observation]
PREDICTIVE = [ThroughputRule(), Mpc(), RobustMpc(), ReelStreamMpc()]
STEADY_FAST = [5000.0] * 8
COLLAPSED = [5000.0] * 6 + [400.0, 350.0]
RECOVERED = [400.0] * 4 + [5000.0] * 6


def test_harmonic_mean_of_last_five() -> None:
    assert harmonic_mean([1.0, 2.0, 4.0]) == pytest.approx(3 / (1 + 0.5 + 0.25))
    assert harmonic_prediction([9e9, 100.0, 100.0, 100.0, 100.0, 100.0]) == pytest.approx(100.0)


def test_highest_rung_at_most() -> None:
    assert highest_rung_at_most([300, 750, 1200], 1199.0) == 1
    assert highest_rung_at_most([300, 750, 1200], 10.0) == 0


@pytest.mark.parametrize("algo", PREDICTIVE, ids=lambda a: a.name)
def test_bandwidth_collapse_drops_rung(algo: AbrAlgorithm, obs: Obs) -> None:
    before = algo.choose(obs(STEADY_FAST, buffer_s=12.0, last_rung=4))
    after = algo.choose(obs(COLLAPSED, buffer_s=12.0, last_rung=4))
    assert before >= 3
    assert after < before
    assert after <= 2


@pytest.mark.parametrize("algo", PREDICTIVE, ids=lambda a: a.name)
def test_recovery_climbs(algo: AbrAlgorithm, obs: Obs) -> None:
    low = algo.choose(obs([400.0] * 8, buffer_s=20.0, last_rung=0))
    high = algo.choose(obs(RECOVERED, buffer_s=20.0, last_rung=0))
    assert low == 0
    assert high > low


@pytest.mark.parametrize("algo", [*PREDICTIVE, Bola(), BufferBased(), AlwaysLowest()],
                         ids=lambda a: a.name)
def test_first_chunk_starts_low(algo: AbrAlgorithm, obs: Obs) -> None:
    assert algo.choose(obs((), buffer_s=0.0, last_rung=None)) == 0


@pytest.mark.parametrize("algo", [Bola(), BufferBased()], ids=lambda a: a.name)
def test_buffer_based_full_buffer_goes_top_and_empty_goes_bottom(algo: AbrAlgorithm,
                                                                 obs: Obs) -> None:
    assert algo.choose(obs([500.0] * 5, buffer_s=59.0, last_rung=2)) == 5
    assert algo.choose(obs([9000.0] * 5, buffer_s=2.0, last_rung=2)) == 0


def test_bola_is_monotone_in_buffer(obs: Obs) -> None:
    rungs = [Bola().choose(obs([1000.0] * 5, buffer_s=b / 2, last_rung=2)) for b in range(121)]
    assert rungs == sorted(rungs)
    assert rungs[0] == 0 and rungs[-1] == 5


def test_bba_holds_rung_between_neighbours(obs: Obs) -> None:
    bba = BufferBased(reservoir_s=5.0, cushion_s=10.0)
    # f(10 s) = 300 + 4000 * 5/10 = 2300 kbps: between rung 3 (1850) and 4 (2850).
    assert bba.choose(obs([1000.0], buffer_s=10.0, last_rung=3)) == 3
    assert bba.choose(obs([1000.0], buffer_s=10.0, last_rung=4)) == 4
    # From rung 1, Rate+ = 1200 <= f(B), so jump to max{R_i < f(B)} = rung 3.
    assert bba.choose(obs([1000.0], buffer_s=10.0, last_rung=1)) == 3


def test_robust_prediction_divides_by_worst_recent_error() -> None:
    history = [1000.0, 1000.0, 250.0, 1000.0]
    errors = prediction_errors(history)
    assert errors[0] == 0.0  # HM(1000) predicted 1000 for the 2nd chunk
    assert errors[1] == pytest.approx((1000 - 250) / 250)
    assert robust_prediction(history) == pytest.approx(harmonic_prediction(history) / (1 + 3.0))


def test_robust_mpc_is_more_cautious_than_mpc_on_a_jittery_link(obs: Obs) -> None:
    jittery = [4000.0, 1000.0, 4000.0, 1000.0, 4000.0, 1000.0, 4000.0, 1000.0]
    assert robust_prediction(jittery) == pytest.approx(harmonic_prediction(jittery) / 2)
    for buffer_s in (2.0, 4.0, 6.0, 10.0):
        o = obs(jittery, buffer_s=buffer_s, last_rung=2)
        assert RobustMpc().choose(o) < Mpc().choose(o)


def test_mpc_uses_the_whole_horizon_to_avoid_a_stall(obs: Obs) -> None:
    # 1500 kbps, 4 s of buffer: the top rung would stall ~7.5 s per chunk.
    assert Mpc().choose(obs([1500.0] * 5, buffer_s=4.0, last_rung=2)) <= 2


def test_quantile_interpolates() -> None:
    assert quantile([], 0.5) == 0.0
    assert quantile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert quantile([0.0, 1.0], 0.25) == pytest.approx(0.25)


def test_cautious_prediction_ignores_under_predictions() -> None:
    tuning = ReelStreamTuning(shift_samples=0)  # the step-up rule apart (next test)
    rising = [500.0, 1000.0, 2000.0, 4000.0, 8000.0, 8000.0]
    assert cautious_prediction(rising, tuning) == pytest.approx(
        harmonic_prediction(rising, tuning.history))
    falling = list(reversed(rising))
    assert cautious_prediction(falling, tuning) < harmonic_prediction(falling, tuning.history)


def test_a_link_that_stepped_up_is_predicted_from_its_new_level(obs: Obs) -> None:
    """0.5 -> 3.3 Mbit/s (an FCC trace on the tuning half): the mean of 8 would lag the
    new level for 6 chunks; two samples both over twice the mean are a new level. One
    sample is not, and neither is a rise under 2x."""
    tuning = ReelStreamMpc().tuning
    stepped = [500.0] * 6 + [3300.0, 3400.0]
    assert level_prediction(stepped, tuning) == pytest.approx(harmonic_mean([3300.0, 3400.0]))
    for history in ([500.0] * 7 + [3300.0], [1000.0] * 6 + [1500.0, 1600.0]):
        assert level_prediction(history, tuning) == harmonic_prediction(history, tuning.history)
    # With 38 s buffered and 9 chunks to go it climbs four rungs at once; without the rule, two.
    assert ReelStreamMpc().choose(obs(stepped, buffer_s=38.0, last_rung=0, chunks_remaining=9)) == 4
    lagging = ReelStreamMpc(ReelStreamTuning(shift_samples=0))
    assert lagging.choose(obs(stepped, buffer_s=38.0, last_rung=0, chunks_remaining=9)) == 2
    # The collapse insurance still reads the whole history: mid-session it climbs two rungs, not five.
    assert ReelStreamMpc().choose(obs(stepped, buffer_s=20.0, last_rung=0, chunks_remaining=30)) == 2


@pytest.mark.parametrize(("buffer_s", "cap"), [(5.0, 0), (10.0, 1), (20.0, 2), (30.0, 3), (50.0, 4)])
def test_tail_insurance_caps_the_rung_by_what_a_collapse_to_the_end_would_cost(
        buffer_s: float, cap: int, obs: Obs) -> None:
    """At 300 kbit/s a lowest-rung chunk takes exactly its 4 s of play, so the cap is the
    largest chunk that lands within the buffer (1200 kbps: 16 s; 2850 kbps: 38 s)."""
    o = obs([3000.0] * 6, buffer_s=buffer_s, last_rung=3, chunks_remaining=3)
    assert tail_cap(o, 300.0) == cap
    insured = ReelStreamMpc(ReelStreamTuning(tail_kbps=300.0))
    assert insured.choose(o) <= cap <= 4
    assert ReelStreamMpc().choose(o) >= cap, "off by default"



def test_tail_insurance_below_the_lowest_rung_keeps_room_for_the_chunks_after(obs: Obs) -> None:
    """At 200 kbit/s each of the 2 lowest-rung chunks after this one takes 6 s for 4 s of
    play: 4 s of the 20 s buffered go to them, and 16 s leave room for a 750 kbps chunk
    (15 s) but not a 1200 kbps one (24 s)."""
    assert tail_cap(obs([3000.0] * 6, buffer_s=20.0, last_rung=3, chunks_remaining=3), 200.0) == 1


def test_collapse_scenario_prices_the_stall_a_fall_to_200_kbps_would_cause(obs: Obs) -> None:
    """20 s buffered; at 200 kbit/s a 1200 kbps chunk (4.8 Mbit) takes 24 s: 4 s of stall
    at 0.03 x 4.3 per second; 1850 kbps 17 s, 2850 kbps 37 s, 4300 kbps 66 s of stall."""
    o = obs([3000.0] * 6, buffer_s=20.0, last_rung=3, chunks_remaining=30)
    priced = ReelStreamTuning(scenario_weight=0.03)
    assert scenario_costs(o, priced) == pytest.approx((0.0, 0.0, 0.516, 2.193, 4.773, 8.514))
    # A link never under 3 Mbit/s is priced against a quarter of that, 750 kbit/s: only the
    # top rung's 17.2 Mbit (22.9 s) would stall.
    assert scenario_costs(o, replace(priced, scenario_share=0.25)) == pytest.approx(
        (0.0, 0.0, 0.0, 0.0, 0.0, 0.03 * 4.3 * (17.2 / 0.75 - 20.0)))
    assert scenario_costs(o, ReelStreamTuning()) == (), "off by default"
    assert scenario_costs(o, replace(priced, scenario_falling=0.8)) == (), "a steady link is not falling"
    falling = obs([3000.0] * 5 + [1500.0], buffer_s=20.0, last_rung=3, chunks_remaining=30)
    assert scenario_costs(falling, replace(priced, scenario_falling=0.8))[2] == pytest.approx(0.516)
    assert ReelStreamMpc(priced).choose(o) < ReelStreamMpc().choose(o) == 4


def test_volatility_is_the_mean_log_step_between_samples() -> None:
    assert volatility([1000.0], 10) == 0.0
    assert volatility([1000.0, 2000.0, 1000.0], 10) == pytest.approx(math.log(2.0))
    # Only the last `window` samples count: the jump 1000 -> 4000 falls outside.
    assert volatility([1000.0, 4000.0, 4000.0, 4000.0], 3) == 0.0


def test_collapse_scenario_gated_on_volatility_spares_a_steady_link(obs: Obs) -> None:
    """A link stepping 3000 <-> 1500 jitters by ln 2 per chunk; a steady 3000 by nothing."""
    gated = ReelStreamTuning(scenario_weight=0.03, scenario_volatility=0.08)
    steady = obs([3000.0] * 6, buffer_s=20.0, last_rung=3, chunks_remaining=30)
    jittery = obs([3000.0, 1500.0] * 3, buffer_s=20.0, last_rung=3, chunks_remaining=30)
    assert scenario_costs(steady, gated) == ()
    assert scenario_costs(jittery, gated)[2] == pytest.approx(0.516)


@pytest.mark.parametrize("buffer_s", [0.0, 2.0, 4.0, 6.0, 9.0, 10.5, 12.0, 15.0, 20.0, 35.0])
@pytest.mark.parametrize("history", [STEADY_FAST, COLLAPSED, RECOVERED, [900.0] * 6,
                                     [2000.0, 600.0, 3000.0, 800.0, 2500.0, 700.0]])
def test_default_never_plans_to_drain_below_the_floor(buffer_s: float, history: list[float],
                                                      obs: Obs) -> None:
    algo = ReelStreamMpc()
    floor = algo.tuning.floor_s
    o = obs(history, buffer_s=buffer_s, last_rung=3)
    rung = algo.choose(o)
    download = o.upcoming_sizes_bytes[0][rung] * 8 / 1000 / algo.predict(o)
    after = buffer_s - download + o.chunk_duration_s
    drains = download > o.chunk_duration_s
    assert rung == 0 or after >= floor or not drains


def test_default_climbs_as_the_buffer_allows_during_startup(obs: Obs) -> None:
    algo = ReelStreamMpc()
    link = [2500.0] * 3
    rungs = [algo.choose(obs(link, buffer_s=b, last_rung=1)) for b in (4.0, 8.0, 16.0, 30.0)]
    assert rungs == sorted(rungs)
    assert rungs[-1] > rungs[0]
    # With 4 s buffered the 1200 kbps chunk (4.8 Mbit) would take 6.9 s if the link
    # collapsed to the insured 700 kbit/s, so it keeps the second rung (insured only
    # against a drop relative to the 2500 kbit/s it measured: 1.5 s at 2000 kbit/s).
    assert rungs[0] == 1


def test_default_second_chunk_keeps_the_start_rung_unless_the_link_is_slow(obs: Obs) -> None:
    """The first chunk comes at rung 1; dropping to rung 0 right after would cost a
    switch and a rung for nothing on a link that carries rung 1 in a third of the
    buffer, but on a link that measured 600 kbit/s a 3-Mbit chunk would not fit."""
    algo = ReelStreamMpc()
    assert algo.choose(obs([2500.0], buffer_s=4.0, last_rung=1)) == 1
    assert algo.choose(obs([600.0], buffer_s=4.0, last_rung=1)) == 0


@pytest.mark.parametrize("algo", PREDICTIVE, ids=lambda a: a.name)
@pytest.mark.parametrize("remaining", [40, 3])
def test_full_buffer_on_a_fast_link_takes_the_top_rung(algo: AbrAlgorithm, remaining: int,
                                                      obs: Obs) -> None:
    assert algo.choose(obs(STEADY_FAST, buffer_s=50.0, last_rung=4,
                           chunks_remaining=remaining)) == 5


@pytest.mark.parametrize("buffer_s", [1.0, 4.0, 7.0, 9.5])
def test_default_under_the_floor_only_takes_downloads_that_fit_half_the_buffer(
        buffer_s: float, obs: Obs) -> None:
    algo = ReelStreamMpc()
    o = obs([6000.0] * 6, buffer_s=buffer_s, last_rung=2)
    rung = algo.choose(o)
    download = o.upcoming_sizes_bytes[0][rung] * 8 / 1000 / algo.predict(o)
    assert rung == 0 or download <= algo.tuning.below_floor_share * buffer_s


def test_collapse_throughput_is_capped_and_follows_a_drop() -> None:
    tuning = ReelStreamMpc().tuning
    assert collapse_throughput(STEADY_FAST, tuning) == tuning.collapse_kbps
    assert relative_collapse(STEADY_FAST, tuning) == pytest.approx(5000.0 / tuning.collapse_share)
    assert collapse_throughput([800.0] * 6, tuning) == pytest.approx(800.0 / tuning.collapse_share)
    # The last sample leads, and a fall is extrapolated one more step: a link that
    # just went from 3000 to 1500 kbit/s is insured from 1500 * (1500/3000)^trend.
    falling = [3000.0] * 5 + [1500.0]
    expected = 1500.0 * 0.5 ** tuning.collapse_trend / tuning.collapse_share
    assert relative_collapse(falling, tuning) == pytest.approx(expected)
    assert collapse_throughput(falling, tuning) == pytest.approx(min(expected, 700.0))
    # A rise is not extrapolated upwards.
    assert relative_collapse([1500.0] * 5 + [3000.0], tuning) == pytest.approx(
        harmonic_prediction([1500.0] * 5 + [3000.0], tuning.history) / tuning.collapse_share)
    off = ReelStreamTuning(collapse_kbps=None)
    assert collapse_throughput(falling, off) == relative_collapse(falling, off) == float("inf")


def test_default_insures_a_falling_link_below_its_last_sample(obs: Obs) -> None:
    """A link falling 2500 -> 1100 kbit/s with 12 s buffered: planned on the
    harmonic mean the 1850 kbps chunk (7.4 Mbit) looks fine, but if the fall goes
    on it would take 7.4 / (1100 * 0.44^0.6 / 1.25) = 13.8 s, so it is refused."""
    algo = ReelStreamMpc()
    steady = algo.choose(obs([2500.0] * 8, buffer_s=12.0, last_rung=3))
    falling = algo.choose(obs([2500.0] * 7 + [1100.0], buffer_s=12.0, last_rung=3))
    assert steady == 3
    assert falling < 3
    no_trend = ReelStreamMpc(ReelStreamTuning(collapse_trend=0.0))
    assert no_trend.choose(obs([2500.0] * 7 + [1100.0], buffer_s=12.0, last_rung=3)) == 3


@pytest.mark.parametrize("buffer_s", [2.0, 4.0, 6.0, 9.0, 12.0, 15.0, 20.0, 28.0, 35.0, 50.0])
@pytest.mark.parametrize("history", [STEADY_FAST, COLLAPSED, RECOVERED, [900.0] * 6,
                                     [2000.0, 600.0, 3000.0, 800.0, 2500.0, 700.0]])
@pytest.mark.parametrize("remaining", [40, 4, 1])
def test_default_next_chunk_survives_a_collapse_to_the_worst_case(
        buffer_s: float, history: list[float], remaining: int, obs: Obs) -> None:
    """Chance constraint: whatever it fetches lands before the buffer runs dry even if
    the link falls to the worst-case rate (<= 700 kbit/s) as the request goes out."""
    algo = ReelStreamMpc()
    o = obs(history, buffer_s=buffer_s, last_rung=3, chunks_remaining=remaining)
    rung = algo.choose(o)
    at_worst = o.upcoming_sizes_bytes[0][rung] * 8 / 1000 / algo.worst_case(o, rung)
    assert rung == 0 or at_worst <= buffer_s
    if rung >= algo.tuning.capped_from_rung:
        assert algo.worst_case(o, rung) <= algo.tuning.collapse_kbps


def test_algorithms_are_pure(obs: Obs) -> None:
    o = obs(COLLAPSED, buffer_s=12.0, last_rung=3)
    for algo in [*PREDICTIVE, Bola(), BufferBased()]:
        assert algo.choose(o) == algo.choose(o)


def test_observation_rejects_inconsistent_input() -> None:
    with pytest.raises(ValueError):
        Observation((1.0,), (), 0.0, None, ((1, 2),), 1, 4.0, (300.0, 750.0))
    with pytest.raises(ValueError):
        Observation((), (), 0.0, None, ((1,),), 1, 4.0, (300.0, 750.0))
