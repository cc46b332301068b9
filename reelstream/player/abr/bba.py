"""Buffer-based adaptation, BBA-0.

Huang, Johari, McKeown, Trunnell, Watson, "A Buffer-Based Approach to Rate
Adaptation: Evidence from a Large Video Streaming Service", SIGCOMM 2014,
Sec. 4 and Algorithm 1. The rate map f(B) is R_min up to the reservoir r, rises
linearly across the cushion cu, and is R_max beyond r + cu. The rung only moves
when f(B) crosses the next rung up or down, which gives BBA-0 its hysteresis.

The paper's reservoir (90 s) and cushion (126 s) are sized for Netflix's 240 s
buffer; our simulator caps the buffer at 60 s, so the defaults are those of the
Pensieve simulator's BB baseline (r = 5 s, cu = 10 s, Mao et al. SIGCOMM 2017),
which keeps results comparable with that literature.
"""

from __future__ import annotations

from collections.abc import Sequence

from reelstream.player.abr.interface import AbrAlgorithm, Observation

RESERVOIR_S = 5.0
CUSHION_S = 10.0


def rate_map(buffer_s: float, bitrates_kbps: Sequence[float], reservoir_s: float,
             cushion_s: float) -> float:
    """f(B) of BBA-0: the rate the buffer level "allows" (kbit/s)."""
    low, high = bitrates_kbps[0], bitrates_kbps[-1]
    if buffer_s <= reservoir_s:
        return low
    if buffer_s >= reservoir_s + cushion_s:
        return high
    return low + (high - low) * (buffer_s - reservoir_s) / cushion_s


class BufferBased(AbrAlgorithm):
    """BBA-0 (Huang et al. 2014, Algorithm 1)."""

    name = "BBA"

    def __init__(self, reservoir_s: float = RESERVOIR_S, cushion_s: float = CUSHION_S) -> None:
        self.reservoir_s = reservoir_s
        self.cushion_s = cushion_s

    def choose(self, obs: Observation) -> int:
        rates = obs.bitrates_kbps
        if obs.buffer_s <= self.reservoir_s:
            return 0
        if obs.buffer_s >= self.reservoir_s + self.cushion_s:
            return obs.top_rung
        previous = 0 if obs.last_rung is None else obs.last_rung
        allowed = rate_map(obs.buffer_s, rates, self.reservoir_s, self.cushion_s)
        rate_up = rates[min(previous + 1, obs.top_rung)]
        rate_down = rates[max(previous - 1, 0)]
        if allowed >= rate_up:
            # max{R_i : R_i < f(B)}
            return max((r for r in range(obs.rungs) if rates[r] < allowed), default=0)
        if allowed <= rate_down:
            # min{R_i : R_i > f(B)}
            return min((r for r in range(obs.rungs) if rates[r] > allowed), default=obs.top_rung)
        return previous
