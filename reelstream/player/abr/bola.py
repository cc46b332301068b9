"""BOLA-BASIC: Lyapunov buffer-based adaptation.

Spiteri, Urgaonkar, Sitaraman, "BOLA: Near-Optimal Bitrate Adaptation for Online
Videos", INFOCOM 2016 (arXiv:1601.06748), Sec. IV, Algorithm 1 (BOLA-BASIC): for the
next chunk pick the rung m maximising

    (V * (v_m + gamma*p) - Q) / S_m

with utility v_m = ln(S_m / S_1), Q the buffer level and S_m the rung's chunk size
(the paper's model has constant sizes S_m = bitrate_m * p, so sizes are taken from
the nominal bitrates; the ratio is what matters).

Parameters. V trades utility against buffer occupancy (the O(1/V) optimality gap
against a buffer bound that grows with V, Sec. IV), and the paper sizes V from the
buffer capacity Q_max. We use the parameterisation of dash.js's BolaRule (written by
the same authors, see also Spiteri et al., "From Theory to Practice", MMSys 2018,
Sec. 3): V*(gamma*p - 1) = reservoir and V*(v_M + gamma*p - 1) = buffer target, so
the lowest rung is preferred until the buffer is well past the reservoir (17 s with
our ladder) and the top rung from about one chunk below the target, the paper's
Q_max - 1 chunks. With the simulator's 60 s buffer the target Q_max is 60 s; the
reservoir is dash.js's MINIMUM_BUFFER_S = 10 s.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from reelstream.player.abr.interface import AbrAlgorithm, Observation

BUFFER_TARGET_S = 60.0
RESERVOIR_S = 10.0


def bola_parameters(bitrates_kbps: Sequence[float], buffer_target_s: float,
                    reservoir_s: float) -> tuple[float, float]:
    """Return ``(V, gamma_p)``: V*(gamma_p-1) = reservoir, V*(v_M+gamma_p-1) = target."""
    v_top = math.log(bitrates_kbps[-1] / bitrates_kbps[0])
    if buffer_target_s <= reservoir_s or v_top <= 0.0:
        raise ValueError("BOLA needs buffer_target > reservoir and more than one bitrate")
    v = (buffer_target_s - reservoir_s) / v_top
    return v, 1.0 + reservoir_s / v


def bola_scores(buffer_s: float, bitrates_kbps: Sequence[float], v: float,
                gamma_p: float) -> list[float]:
    """BOLA's objective per rung; the argmax is the decision."""
    low = bitrates_kbps[0]
    return [(v * (math.log(rate / low) + gamma_p) - buffer_s) / rate for rate in bitrates_kbps]


class Bola(AbrAlgorithm):
    """BOLA-BASIC (Spiteri et al. 2016, Algorithm 1).

    Above the target every score is negative and the largest chunk has the score
    closest to zero, so a full buffer selects the top rung (BOLA-BASIC would idle
    instead; the simulator's buffer cap does the idling).
    """

    name = "BOLA"

    def __init__(self, buffer_target_s: float = BUFFER_TARGET_S,
                 reservoir_s: float = RESERVOIR_S) -> None:
        self.buffer_target_s = buffer_target_s
        self.reservoir_s = reservoir_s

    def choose(self, obs: Observation) -> int:
        v, gamma_p = bola_parameters(obs.bitrates_kbps, self.buffer_target_s, self.reservoir_s)
        scores = bola_scores(obs.buffer_s, obs.bitrates_kbps, v, gamma_p)
        return max(range(obs.rungs), key=lambda rung: scores[rung])
