"""The stochastic-DP controller: its link model, its solver and its decisions."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from reelstream.player.abr import Observation
from reelstream.player.abr.sdp import (
    OUTCOMES,
    LinkModel,
    SdpAbr,
    context,
    jitter,
    link_level,
    solve,
)
from tests.unit.player.conftest import LADDER, nominal_sizes

Obs = Callable[..., Observation]


def steady_sessions() -> list[list[float]]:
    """Links that hold their level (+-5 %), from 200 kbit/s to 8 Mbit/s."""
    rng = random.Random(7)
    return [[level * rng.uniform(0.95, 1.05) for _ in range(48)]
            for level in (200.0, 400.0, 700.0, 1200.0, 2500.0, 5000.0, 8000.0) for _ in range(20)]


def collapsing_sessions() -> list[list[float]]:
    """Steady links that, one chunk in six, fall to a tenth for a chunk."""
    rng = random.Random(11)
    return [[level / 10 if rng.random() < 1 / 6 else level for _ in range(48)]
            for level in (700.0, 1200.0, 2500.0, 5000.0) for _ in range(40)]


@pytest.fixture(scope="module")
def steady() -> LinkModel:
    return LinkModel.fit(steady_sessions())


@pytest.fixture(scope="module")
def risky() -> LinkModel:
    return LinkModel.fit(collapsing_sessions())


def test_a_steady_link_puts_the_next_sample_at_its_average(steady: LinkModel) -> None:
    probs = steady.probabilities()
    assert probs.sum(axis=-1) == pytest.approx(np.ones(probs.shape[:2]))
    flat = probs[context(2500.0, 2500.0)]
    assert OUTCOMES[int(np.argmax(flat))] == pytest.approx(0.0, abs=0.08)
    assert flat[OUTCOMES < -0.3].sum() == 0.0


def test_a_context_without_samples_borrows_from_wider_ones(steady: LinkModel) -> None:
    """Nothing steady ever fell to a fifth of its average: that context and its whole trend
    bucket have no samples, so it takes the distribution of every context."""
    probs = steady.probabilities()
    trend, level = context(100.0, 2000.0)
    assert sum(sum(row) for row in steady.counts[trend]) == 0
    overall = np.array(steady.counts, dtype=float).sum(axis=(0, 1))
    assert probs[trend, level] == pytest.approx(overall / overall.sum())


def test_an_empty_model_is_refused() -> None:
    with pytest.raises(ValueError, match="no samples"):
        LinkModel.fit([[], [1000.0]]).probabilities()


def test_model_round_trips_through_json(steady: LinkModel, tmp_path: Path) -> None:
    path = tmp_path / "link.json"
    steady.save(path)
    assert LinkModel.load(path) == steady
    assert LinkModel.load(path).digest == steady.digest


def test_link_level_is_a_harmonic_moving_average() -> None:
    assert link_level([1000.0]) == 1000.0
    # One sample of 2000 weighs a quarter: 1 / (0.25/2000 + 0.75/1000).
    assert link_level([1000.0, 2000.0]) == pytest.approx(1 / (0.25 / 2000 + 0.75 / 1000))
    assert jitter([1000.0, 2000.0, 1000.0]) == pytest.approx(math.log(2))


def test_the_last_chunk_is_the_best_single_bet(risky: LinkModel) -> None:
    """With one chunk left the value table is an expectation over the model's outcomes,
    computed here by hand for one state: 2 Mbit/s link, 6 s buffered, last rung 2."""
    sizes = [[rate * 500 for rate in LADDER]]          # 4-s chunks, bytes
    tables = solve(risky, 50.0, sizes, LADDER, 4.0)
    assert len(tables) == 2 and not tables[1].any()
    grid = np.exp(np.linspace(math.log(80.0), math.log(12000.0), 16))
    state = int(np.argmin(abs(np.log(grid / 2000.0))))
    probs = risky.probabilities()[context(grid[state], grid[state])]
    samples = grid[state] * np.exp(OUTCOMES)
    q = np.asarray(LADDER) / 1000
    by_hand = max(q[r] - abs(q[r] - q[2]) - 50.0 * float(
        (probs * np.maximum(sizes[0][r] * 8 / 1000 / samples - 6.0, 0.0)).sum()) for r in range(6))
    assert tables[0][12, 2, state * 16 + state] == pytest.approx(by_hand)


def test_first_chunk_is_the_lowest(steady: LinkModel, obs: Obs) -> None:
    assert SdpAbr(steady).choose(obs([], buffer_s=0.0, last_rung=None, chunks_remaining=6)) == 0


def test_a_steady_fast_link_gets_the_top_rung(steady: LinkModel, obs: Obs) -> None:
    o = obs([6000.0] * 8, buffer_s=30.0, last_rung=5, chunks_remaining=6)
    assert SdpAbr(steady).choose(o) == 5


def test_a_collapse_drops_the_rung(risky: LinkModel, obs: Obs) -> None:
    algo = SdpAbr(risky)
    before = algo.choose(obs([5000.0] * 8, buffer_s=12.0, last_rung=4, chunks_remaining=6))
    after = algo.choose(obs([5000.0] * 6 + [400.0, 350.0], buffer_s=12.0, last_rung=4,
                            chunks_remaining=6))
    assert after < before
    assert after <= 2


def test_a_risky_link_costs_rungs_a_steady_one_does_not(steady: LinkModel, risky: LinkModel,
                                                        obs: Obs) -> None:
    """Same history, same buffer: the model that has seen collapses bets lower."""
    o = obs([2500.0] * 8, buffer_s=10.0, last_rung=3, chunks_remaining=6)
    assert SdpAbr(risky).choose(o) < SdpAbr(steady).choose(o)


def test_stall_price_follows_the_links_jitter(steady: LinkModel) -> None:
    algo = SdpAbr(steady, cautious_mu=150.0, bold_mu=50.0, jitter_edge=0.1, min_samples=3)
    assert algo.mu([2000.0, 2000.0]) == 150.0, "too few samples count as jittery"
    assert algo.mu([2000.0] * 6) == 50.0
    assert algo.mu([2000.0, 1000.0] * 3) == 150.0


def test_decision_is_pure(risky: LinkModel, obs: Obs) -> None:
    o = obs([3000.0, 1200.0, 2500.0, 900.0], buffer_s=14.0, last_rung=2, chunks_remaining=5)
    algo = SdpAbr(risky)
    assert algo.choose(o) == algo.choose(o) == SdpAbr(risky).choose(o)


def test_missing_sizes_fall_back_to_the_nominal_bitrate(steady: LinkModel, obs: Obs) -> None:
    o = obs([6000.0] * 8, buffer_s=30.0, last_rung=5, chunks_remaining=6)
    short = Observation(**{**o.__dict__, "upcoming_sizes_bytes": nominal_sizes(1)})
    assert SdpAbr(steady).choose(short) == SdpAbr(steady).choose(o)


def test_solves_are_reused_for_a_suffix_and_bounded(steady: LinkModel) -> None:
    from reelstream.player.abr import sdp

    sizes = [[rate * 500 for rate in LADDER]] * 3
    whole = solve(steady, 7.0, sizes, LADDER, 4.0)
    assert solve(steady, 7.0, sizes[1:], LADDER, 4.0)[0] is whole[1], "a suffix reuses the solve"
    for mu in range(8, 8 + sdp.MAX_SOLVED + 2):
        solve(steady, float(mu), sizes, LADDER, 4.0)
    assert sum(len(solves) for solves in sdp._SOLVED.values()) == sdp.MAX_SOLVED


def test_quality_drops_before_the_buffer_falls_under_the_floor(steady: LinkModel,
                                                              obs: Obs) -> None:
    """Near the end the solve would spend the buffer on the top rung (8.6 s to fetch at
    2 Mbit/s, 11 s buffered, no stall); the floor rule keeps the buffer at 10 s or more."""
    o = obs([2000.0] * 8, buffer_s=11.0, last_rung=5, chunks_remaining=2)
    assert SdpAbr(steady, floor_s=0.0).choose(o) == 5
    kept = SdpAbr(steady).choose(o)
    assert kept == 3, "1850 kbps leaves 11.3 s; 2850 kbps would leave 9.3 s"


def test_under_the_floor_it_climbs_only_to_rungs_the_link_sustains(steady: LinkModel,
                                                                   obs: Obs) -> None:
    """6 s buffered, 3 chunks left, a steady 1.5 Mbit/s: unruled, the solve bets on
    1850 kbps; under the floor only rungs fetched within a chunk's duration are allowed."""
    o = obs([1500.0] * 4, buffer_s=6.0, last_rung=1, chunks_remaining=3)
    assert LADDER[SdpAbr(steady, cautious_mu=4.3, bold_mu=4.3, floor_s=0.0).choose(o)] > 1500.0
    assert SdpAbr(steady, cautious_mu=4.3, bold_mu=4.3).choose(o) == 2
