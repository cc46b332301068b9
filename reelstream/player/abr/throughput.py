"""Throughput-based ABR and the harmonic-mean bandwidth predictor it shares with MPC.

The harmonic mean of the last five chunk throughputs is the predictor of Yin et al.,
"A Control-Theoretic Approach for Dynamic Adaptive Video Streaming over HTTP"
(SIGCOMM 2015), Sec. 4.3 / 6.1; it damps the effect of a single outlier sample,
which an arithmetic mean does not (FESTIVE, Jiang et al., CoNEXT 2012, Sec. 4.1).
"""

from __future__ import annotations

from collections.abc import Sequence

from reelstream.player.abr.interface import AbrAlgorithm, Observation, highest_rung_at_most

HISTORY = 5
"""Samples averaged by the predictor (Yin et al. 2015 use the last 5 chunks)."""


def harmonic_mean(samples: Sequence[float]) -> float:
    """Harmonic mean of positive samples; 0 if any sample is 0 or there are none."""
    if not samples or min(samples) <= 0.0:
        return 0.0
    return len(samples) / sum(1.0 / s for s in samples)


def harmonic_prediction(throughputs_kbps: Sequence[float], history: int = HISTORY) -> float:
    """Predicted throughput for the next chunk: harmonic mean of the last ``history``.

    A zero sample (a chunk that took forever on a dead link) would make the harmonic
    mean zero; it is floored at 1 kbit/s so the predictor stays defined and simply
    says "very slow".
    """
    recent = [max(s, 1.0) for s in throughputs_kbps[-history:]]
    return harmonic_mean(recent)


class ThroughputRule(AbrAlgorithm):
    """Rate-based ABR: the highest rung not above the harmonic-mean prediction.

    The classic rate-based baseline of the MPC paper (Yin et al. 2015, Sec. 6.1,
    "RB"): no buffer awareness at all. With no measurement yet it picks rung 0.
    """

    name = "Throughput"

    def __init__(self, history: int = HISTORY) -> None:
        self.history = history

    def choose(self, obs: Observation) -> int:
        if not obs.throughputs_kbps:
            return 0
        prediction = harmonic_prediction(obs.throughputs_kbps, self.history)
        return highest_rung_at_most(obs.bitrates_kbps, prediction)
