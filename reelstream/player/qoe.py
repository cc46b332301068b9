"""Session quality metrics, as defined in the Pensieve evaluation.

Mao et al., SIGCOMM 2017, Sec. 5.1: per chunk n, QoE = q(R_n) - mu * T_n
- |q(R_n) - q(R_n-1)|, with

* QoE_lin: q(R) = R in Mbit/s, mu = 4.3;
* QoE_log: q(R) = ln(R / R_min), mu = 2.66;
* QoE_hd: q maps 0.3/0.75/1.2/1.85/2.85/4.3 Mbit/s to 1/2/3/12/15/20, mu = 8.

As in Pensieve's evaluation the first chunk is left out (its download is the
startup delay, reported on its own); a session's QoE is the mean over the other
chunks. Every other figure here uses the same window, chunk 2 onwards.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

from reelstream.player.simulator import Session

HD_QUALITY = {300.0: 1.0, 750.0: 2.0, 1200.0: 3.0, 1850.0: 12.0, 2850.0: 15.0, 4300.0: 20.0}


@dataclass(frozen=True)
class QoeModel:
    """One QoE variant: quality per rung and the stall penalty mu."""

    name: str
    quality: tuple[float, ...]
    rebuffer_penalty: float


def qoe_models(bitrates_kbps: Sequence[float]) -> tuple[QoeModel, ...]:
    """QoE_lin, QoE_log and QoE_hd for a ladder (hd only defined for Pensieve's)."""
    lin = QoeModel("lin", tuple(r / 1000.0 for r in bitrates_kbps), 4.3)
    log = QoeModel("log", tuple(math.log(r / bitrates_kbps[0]) for r in bitrates_kbps), 2.66)
    if any(r not in HD_QUALITY for r in bitrates_kbps):
        return lin, log
    return lin, log, QoeModel("hd", tuple(HD_QUALITY[r] for r in bitrates_kbps), 8.0)


def chunk_rewards(session: Session, model: QoeModel) -> list[float]:
    """QoE of every chunk from the second on."""
    chunks, q = session.chunks, model.quality
    return [q[c.rung] - model.rebuffer_penalty * c.stall_s - abs(q[c.rung] - q[p.rung])
            for p, c in pairwise(chunks)]


@dataclass(frozen=True)
class SessionMetrics:
    """Figures for one session (QoE values are per-chunk means)."""

    trace: str
    algorithm: str
    qoe: dict[str, float]
    stall_s: float
    play_s: float
    startup_s: float
    avg_bitrate_kbps: float
    switches: int
    smoothness_mbps: float

    @property
    def rebuffer_ratio(self) -> float:
        """Stall time / (stall + play time)."""
        return self.stall_s / (self.stall_s + self.play_s)


def measure(session: Session, bitrates_kbps: Sequence[float], chunk_s: float) -> SessionMetrics:
    """All metrics of one session."""
    later = session.chunks[1:]
    pairs = list(pairwise(session.chunks))
    rates = [bitrates_kbps[c.rung] for c in later]
    return SessionMetrics(
        trace=session.trace,
        algorithm=session.algorithm,
        qoe={m.name: sum(chunk_rewards(session, m)) / len(later) for m in qoe_models(bitrates_kbps)},
        stall_s=sum(c.stall_s for c in later),
        play_s=len(later) * chunk_s,
        startup_s=session.startup_s,
        avg_bitrate_kbps=sum(rates) / len(rates),
        switches=sum(1 for p, c in pairs if p.rung != c.rung),
        smoothness_mbps=sum(abs(bitrates_kbps[c.rung] - bitrates_kbps[p.rung])
                            for p, c in pairs) / 1000.0 / len(later),
    )
