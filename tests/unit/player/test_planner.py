"""The pruned horizon search finds the same optimum as enumerating every sequence."""

from __future__ import annotations

import itertools
import random

import pytest

from reelstream.player.abr.planner import PlanProblem, best_first_rung, plan_value

QUALITY = (0.3, 0.75, 1.2, 1.85, 2.85, 4.3)


def random_problem(rng: random.Random, horizon: int, safe: bool) -> PlanProblem:
    bandwidth = rng.uniform(0.2, 6.0)  # Mbit/s
    return PlanProblem(
        buffer_s=rng.choice([0.0, 2.0, 4.0, rng.uniform(0.0, 40.0)]),
        last_rung=rng.randrange(6),
        download_s=[[q * 4.0 * rng.uniform(0.8, 1.25) / bandwidth for q in QUALITY]
                    for _ in range(horizon)],
        quality=QUALITY,
        chunk_s=4.0,
        rebuffer_penalty=4.3,
        smooth_penalty=rng.choice([1.0, 2.0]),
        floor_s=10.0 if safe else None,
        below_floor_share=rng.choice([0.5, 1.0]),
        shortfall_costs=((rng.choice([0.0, 30.0]), rng.choice([0.0, 0.1, 0.5])),
                         (rng.uniform(0.0, 20.0), rng.choice([0.0, 2.0]))) if safe else (),
        worst_download_s=[[q * 4.0 / rng.uniform(0.3, 1.0) for q in QUALITY]
                          for _ in range(horizon)] if safe else None,
        worst_margin_s=rng.choice([0.0, 1.0]),
        first_cost=tuple(rng.uniform(0.0, 2.0) for _ in QUALITY) if safe else (),
    )


def brute_force_best(problem: PlanProblem) -> float:
    values = [plan_value(problem, seq)
              for seq in itertools.product(range(6), repeat=len(problem.download_s))]
    return max(v for v in values if v is not None)


@pytest.mark.parametrize("seed", range(60))
def test_pruned_search_matches_full_enumeration(seed: int) -> None:
    rng = random.Random(seed)
    problem = random_problem(rng, horizon=rng.choice([1, 2, 3, 5]), safe=seed % 2 == 1)
    first = best_first_rung(problem)
    best = brute_force_best(problem)
    # The value reachable from the chosen first rung equals the global optimum.
    from_first = max(v for seq in itertools.product(range(6), repeat=len(problem.download_s))
                     if seq[0] == first and (v := plan_value(problem, seq)) is not None)
    assert from_first == pytest.approx(best, abs=1e-9)


def test_floor_refuses_a_draining_rung_but_always_allows_the_lowest() -> None:
    problem = PlanProblem(buffer_s=11.0, last_rung=5, download_s=[[1.0, 2.0, 3.0, 5.0, 8.0, 12.0]],
                          quality=QUALITY, chunk_s=4.0, rebuffer_penalty=4.3, floor_s=10.0)
    assert plan_value(problem, [4]) is None  # 11 - 8 + 4 = 7 s < 10 s and it drains
    assert plan_value(problem, [3]) is not None  # 11 - 5 + 4 = 10 s
    assert best_first_rung(problem) == 3
    starving = PlanProblem(buffer_s=1.0, last_rung=3, download_s=[[9.0] * 6], quality=QUALITY,
                           chunk_s=4.0, rebuffer_penalty=4.3, floor_s=10.0)
    assert best_first_rung(starving) == 0


def test_worst_case_refuses_a_chunk_a_collapse_would_strand_at_every_step() -> None:
    # Expected downloads are short, but at the worst-case rate rung 4 takes 16 s.
    expected = [0.3, 0.75, 1.2, 1.85, 2.85, 4.3]
    worst = [q * 4.0 / 0.7 for q in QUALITY]
    problem = PlanProblem(buffer_s=15.0, last_rung=4, download_s=[expected, expected],
                          quality=QUALITY, chunk_s=4.0, rebuffer_penalty=4.3,
                          worst_download_s=[worst, worst])
    assert plan_value(problem, [4, 0]) is None  # 16.3 s at the worst rate > 15 s
    assert plan_value(problem, [3, 3]) is not None  # 10.6 s fits, and again at 15.2 s
    assert best_first_rung(problem) == 3
    thin = PlanProblem(buffer_s=0.5, last_rung=4, download_s=[expected], quality=QUALITY,
                       chunk_s=4.0, rebuffer_penalty=4.3, worst_download_s=[worst])
    assert best_first_rung(thin) == 0  # the lowest rung is always allowed
