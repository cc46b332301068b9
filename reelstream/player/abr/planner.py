"""Exact finite-horizon search over rung sequences, the optimisation step of MPC.

Yin et al. (SIGCOMM 2015, Sec. 4 and 6.1) solve the horizon problem by enumerating
every rung sequence: 6^5 = 7,776 for our ladder and horizon, 48 times a session. In
pure Python that is too slow for a benchmark of 400 traces, so we search the same
tree breadth-first and drop *dominated* partial plans: two partial plans ending on
the same rung at the same depth face the same future, and the future reward can only
grow with the buffer (less stall, more rungs admissible, less target deficit). A
plan with no more buffer *and* no more reward than another is therefore never
needed. Buffers above a saturation level, where no future step can stall or be
refused, are compared as equal. The result is the same optimal value as full
enumeration (``tests/unit/player/test_planner.py`` checks it against brute force);
only ties between equally good plans may resolve differently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# One partial plan: (buffer after its last chunk, reward so far, first rung).
_Plan = tuple[float, float, int]


@dataclass(frozen=True)
class PlanProblem:
    """One horizon problem.

    Attributes:
        buffer_s: buffer level now.
        last_rung: rung of the previous chunk (smoothness is measured from it).
        download_s: ``download_s[k][rung]``, predicted download time of the k-th
            next chunk; the horizon is ``len(download_s)``.
        quality: q(R) per rung (Mbit/s for QoE_lin).
        chunk_s: playback seconds added per chunk.
        rebuffer_penalty: mu, reward lost per second of stall.
        smooth_penalty: reward lost per unit of |q(R_k) - q(R_k-1)|.
        floor_s: if set, a rung other than 0 is refused when it would leave the
            buffer below ``floor_s`` after the chunk lands, unless the download
            neither shrinks the buffer (it is shorter than the chunk plays) nor
            takes more than ``below_floor_share`` of the buffer (so that a
            prediction off by 1/share still does not stall).
        below_floor_share: see ``floor_s``.
        shortfall_costs: ``(level_s, weight)`` pairs: each second the plan ends
            below ``level_s`` costs ``weight`` (a buffer target, or "do not end
            lower than now").
        worst_download_s: ``[k][rung]`` download time under a collapse; a rung other
            than 0 whose worst case outlasts the buffer (less ``worst_margin_s``) is refused.
        worst_margin_s: see ``worst_download_s``.
        first_cost: extra cost per rung of the *first* chunk of the plan (empty: none),
            e.g. the expected stall of a collapse while it downloads.
    """

    buffer_s: float
    last_rung: int
    download_s: Sequence[Sequence[float]]
    quality: Sequence[float]
    chunk_s: float
    rebuffer_penalty: float
    smooth_penalty: float = 1.0
    floor_s: float | None = None
    below_floor_share: float = 1.0
    shortfall_costs: tuple[tuple[float, float], ...] = ()
    worst_download_s: Sequence[Sequence[float]] | None = None
    worst_margin_s: float = 0.0
    first_cost: Sequence[float] = ()


def admissible(problem: PlanProblem, buffer_s: float, rung: int, download_s: float,
               depth: int = 0) -> bool:
    """Whether the safety rules let the plan fetch ``rung`` from ``buffer_s``."""
    if rung == 0:
        return True
    worst = problem.worst_download_s
    if worst is not None and worst[depth][rung] > buffer_s - problem.worst_margin_s:
        return False
    if problem.floor_s is None:
        return True
    if buffer_s - download_s + problem.chunk_s >= problem.floor_s:
        return True
    return download_s <= problem.chunk_s and download_s <= problem.below_floor_share * buffer_s


def _saturation(problem: PlanProblem, depth: int) -> float:
    """Buffer above which nothing in steps after ``depth`` can change the reward."""
    ahead = sum(max(row) for row in problem.download_s[depth + 1:])
    levels = [level for level, _ in problem.shortfall_costs]
    if problem.worst_download_s is not None:
        levels += [max(row) + problem.worst_margin_s
                   for row in problem.worst_download_s[depth + 1:]]
    return ahead + max([problem.floor_s or 0.0, *levels]) + problem.chunk_s


def _pareto(plans: list[_Plan], cap: float) -> list[_Plan]:
    """Keep the plans that no other plan beats on both (capped) buffer and reward."""
    plans.sort(key=lambda p: (min(p[0], cap), p[1]), reverse=True)
    kept: list[_Plan] = []
    best = float("-inf")
    for plan in plans:
        if plan[1] > best:
            kept.append(plan)
            best = plan[1]
    return kept


def _expand(problem: PlanProblem, depth: int,
            frontier: dict[int, list[_Plan]]) -> dict[int, list[_Plan]]:
    """All one-chunk extensions of the frontier, grouped by their last rung."""
    quality, chunk = problem.quality, problem.chunk_s
    row = problem.download_s[depth]
    grown: dict[int, list[_Plan]] = {}
    for previous, plans in frontier.items():
        for buffer_s, reward, first in plans:
            for rung, download in enumerate(row):
                if not admissible(problem, buffer_s, rung, download, depth):
                    continue
                stall = download - buffer_s if download > buffer_s else 0.0
                after = buffer_s - download + chunk if stall == 0.0 else chunk
                gain = (quality[rung] - problem.rebuffer_penalty * stall
                        - problem.smooth_penalty * abs(quality[rung] - quality[previous]))
                if first < 0 and problem.first_cost:
                    gain -= problem.first_cost[rung]
                grown.setdefault(rung, []).append(
                    (after, reward + gain, rung if first < 0 else first))
    cap = _saturation(problem, depth)
    return {rung: _pareto(plans, cap) for rung, plans in grown.items()}


def shortfall(problem: PlanProblem, end_buffer_s: float) -> float:
    """Cost of ending the horizon with ``end_buffer_s`` of buffer."""
    return sum(weight * max(level - end_buffer_s, 0.0) for level, weight in problem.shortfall_costs)


def _terminal(problem: PlanProblem, plan: _Plan) -> float:
    return plan[1] - shortfall(problem, plan[0])


def best_first_rung(problem: PlanProblem) -> int:
    """First rung of the reward-maximising plan over the horizon.

    Ties go to the higher first rung, as in Pensieve's MPC reference code (it keeps
    the last of equally good sequences in lexicographic order).
    """
    frontier: dict[int, list[_Plan]] = {problem.last_rung: [(problem.buffer_s, 0.0, -1)]}
    for depth in range(len(problem.download_s)):
        frontier = _expand(problem, depth, frontier)
    finals = [plan for plans in frontier.values() for plan in plans]
    if not finals:
        return 0
    return max(finals, key=lambda plan: (_terminal(problem, plan), plan[2]))[2]


def plan_value(problem: PlanProblem, rungs: Sequence[int]) -> float | None:
    """Reward of one explicit rung sequence, or None if the floor refuses it.

    The brute-force reference for the search above (and handy in tests).
    """
    buffer_s, previous, reward = problem.buffer_s, problem.last_rung, 0.0
    for depth, rung in enumerate(rungs):
        download = problem.download_s[depth][rung]
        if not admissible(problem, buffer_s, rung, download, depth):
            return None
        stall = max(download - buffer_s, 0.0)
        buffer_s = max(buffer_s - download, 0.0) + problem.chunk_s
        reward += (problem.quality[rung] - problem.rebuffer_penalty * stall
                   - problem.smooth_penalty * abs(problem.quality[rung] - problem.quality[previous]))
        if depth == 0 and problem.first_cost:
            reward -= problem.first_cost[rung]
        previous = rung
    return reward - shortfall(problem, buffer_s)
