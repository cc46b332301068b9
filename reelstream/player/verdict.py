"""How firm a target's verdict is on a set of traces: a bootstrap over the traces.

The ABR targets compare set-level figures (mean QoE_lin against RobustMPC's, the pooled
rebuffer ratio against BOLA's) on a few dozen traces. When one trace's stall decides a
verdict, another draw of traces from the same population can reverse it. Resampling the
traces with replacement (every session of a drawn trace comes with it: a cluster
bootstrap) estimates how often a set of the same size would meet each target. Where
several trace files are windows of one recording (the FCC set), their sessions are
pooled per recording first, so overlapping windows are drawn together, not as
independent evidence.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from reelstream.player.qoe import SessionMetrics


@dataclass(frozen=True)
class TraceTotals:
    """One algorithm's sums over its sessions on one trace."""

    qoe_lin: float
    stall_s: float


@dataclass(frozen=True)
class TargetOdds:
    """Share of resampled trace sets on which each target holds."""

    qoe_ratio_met: float
    rebuffer_met: float
    both_met: float
    qoe_ratio_low: float      # 5th and 95th percentiles of the QoE_lin ratio
    qoe_ratio_high: float


def totals_by_trace(metrics: Sequence[SessionMetrics]) -> dict[str, TraceTotals]:
    """Per trace name: summed QoE_lin and stall time of its sessions."""
    qoe: dict[str, float] = {}
    stall: dict[str, float] = {}
    for m in metrics:
        qoe[m.trace] = qoe.get(m.trace, 0.0) + m.qoe["lin"]
        stall[m.trace] = stall.get(m.trace, 0.0) + m.stall_s
    return {name: TraceTotals(qoe[name], stall[name]) for name in qoe}


def totals_by_recording(totals: Mapping[str, TraceTotals],
                        recording_of: Callable[[str], str]) -> dict[str, TraceTotals]:
    """Per recording: the sums of its trace files' totals."""
    pooled: dict[str, TraceTotals] = {}
    for name, t in totals.items():
        key = recording_of(name)
        before = pooled.get(key, TraceTotals(0.0, 0.0))
        pooled[key] = TraceTotals(before.qoe_lin + t.qoe_lin, before.stall_s + t.stall_s)
    return pooled


def target_odds(ours: Mapping[str, TraceTotals], robust: Mapping[str, TraceTotals],
                bola: Mapping[str, TraceTotals], traces: Sequence[str], *,
                qoe_ratio: float = 1.05, draws: int = 4000, seed: int = 0) -> TargetOdds:
    """Bootstrap ``traces`` (the names of one portion) ``draws`` times and count the draws
    where our mean QoE_lin is at least ``qoe_ratio`` x RobustMPC's and our stall time at
    most BOLA's (the same sessions play the same time, so pooled rebuffer ratios compare
    as stall times). Every algorithm must have played every trace the same number of times."""
    if not traces:
        raise ValueError("no traces to resample")
    missing = [t for t in traces if t not in ours or t not in robust or t not in bola]
    if missing:
        raise ValueError(f"traces without sessions for every algorithm: {missing[:3]}")
    ours_q = np.array([ours[t].qoe_lin for t in traces])
    robust_q = np.array([robust[t].qoe_lin for t in traces])
    stall_gap = np.array([ours[t].stall_s - bola[t].stall_s for t in traces])
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(len(traces), np.full(len(traces), 1.0 / len(traces)), size=draws)
    robust_sum = counts @ robust_q
    ratio = np.where(robust_sum > 0, (counts @ ours_q) / np.where(robust_sum > 0, robust_sum, 1.0),
                     np.inf)
    qoe_met = ratio >= qoe_ratio
    # 1 ms of stall over a whole set is below the simulator's resolution, not a verdict.
    rebuffer_met = counts @ stall_gap <= 1e-3
    return TargetOdds(
        qoe_ratio_met=float(qoe_met.mean()),
        rebuffer_met=float(rebuffer_met.mean()),
        both_met=float((qoe_met & rebuffer_met).mean()),
        qoe_ratio_low=float(np.percentile(ratio, 5)),
        qoe_ratio_high=float(np.percentile(ratio, 95)),
    )
