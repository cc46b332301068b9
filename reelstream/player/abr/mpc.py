"""MPC and RobustMPC.

Yin, Jindal, Sekar, Sinopoli, "A Control-Theoretic Approach for Dynamic Adaptive
Video Streaming over HTTP", SIGCOMM 2015. Each chunk, predict the throughput, then
pick the rung sequence over the next N = 5 chunks maximising QoE_lin (Sec. 3,
eq. (5): bitrate - mu * rebuffer - |bitrate change|, mu = 4.3 in Mbit/s units as in
the Pensieve evaluation) and fetch its first rung (Sec. 4, Algorithm 1).

* FastMPC/MPC (Sec. 4.3): the prediction is the harmonic mean of the last 5 chunk
  throughputs.
* RobustMPC (Sec. 4.3, 6.1): the same harmonic mean divided by (1 + e), where e is
  the largest relative prediction error |predicted - actual| / actual over the last
  5 chunks (Pensieve's reference implementation, ``test/mpc.py``).

Both are stateless: the past predictions are recomputed from the throughput history
in the observation, so the error of chunk k is that of the harmonic mean of the 5
chunks before it. The horizon is searched exactly (:mod:`.planner`).
"""

from __future__ import annotations

from collections.abc import Sequence

from reelstream.player.abr.interface import AbrAlgorithm, Observation, chunk_size_bytes
from reelstream.player.abr.planner import PlanProblem, best_first_rung
from reelstream.player.abr.throughput import HISTORY, harmonic_prediction

HORIZON = 5
REBUFFER_PENALTY = 4.3  # QoE_lin's mu (Mao et al. 2017, Sec. 5.1)


def prediction_errors(throughputs_kbps: Sequence[float], history: int = HISTORY) -> list[float]:
    """Relative error of the harmonic-mean prediction for each chunk after the first.

    Element i is |HM(before chunk i+1) - actual(i+1)| / actual(i+1).
    """
    errors = []
    for index in range(1, len(throughputs_kbps)):
        predicted = harmonic_prediction(throughputs_kbps[:index], history)
        actual = max(throughputs_kbps[index], 1.0)
        errors.append(abs(predicted - actual) / actual)
    return errors


def robust_prediction(throughputs_kbps: Sequence[float], history: int = HISTORY) -> float:
    """RobustMPC's bandwidth: harmonic mean / (1 + max error of the last ``history``)."""
    errors = prediction_errors(throughputs_kbps[-(history + history):], history)
    # Errors are only defined where a full window preceded the sample; recomputing
    # them from a window of 2*history samples gives exactly the last `history`.
    worst = max(errors[-history:], default=0.0)
    return harmonic_prediction(throughputs_kbps, history) / (1.0 + worst)


def download_times(obs: Observation, bandwidth_kbps: float, horizon: int) -> list[list[float]]:
    """Predicted download seconds of the next ``horizon`` chunks at every rung."""
    bytes_per_s = max(bandwidth_kbps, 1.0) * 1000.0 / 8.0
    return [[chunk_size_bytes(obs, ahead, rung) / bytes_per_s for rung in range(obs.rungs)]
            for ahead in range(horizon)]


def mbps(obs: Observation) -> list[float]:
    """QoE_lin's quality q(R) = R in Mbit/s, per rung."""
    return [rate / 1000.0 for rate in obs.bitrates_kbps]


class Mpc(AbrAlgorithm):
    """MPC with the harmonic-mean predictor (Yin et al. 2015, "FastMPC" objective)."""

    name = "MPC"

    def __init__(self, horizon: int = HORIZON, rebuffer_penalty: float = REBUFFER_PENALTY) -> None:
        self.horizon = horizon
        self.rebuffer_penalty = rebuffer_penalty

    def predict(self, obs: Observation) -> float:
        """Bandwidth (kbit/s) assumed for every chunk in the horizon."""
        return harmonic_prediction(obs.throughputs_kbps)

    def choose(self, obs: Observation) -> int:
        if not obs.throughputs_kbps:
            return 0
        horizon = min(self.horizon, obs.chunks_remaining)
        problem = PlanProblem(
            buffer_s=obs.buffer_s,
            last_rung=0 if obs.last_rung is None else obs.last_rung,
            download_s=download_times(obs, self.predict(obs), horizon),
            quality=mbps(obs),
            chunk_s=obs.chunk_duration_s,
            rebuffer_penalty=self.rebuffer_penalty,
        )
        return best_first_rung(problem)


class RobustMpc(Mpc):
    """RobustMPC: MPC planning on the error-discounted prediction (Yin et al. 2015)."""

    name = "RobustMPC"

    def predict(self, obs: Observation) -> float:
        return robust_prediction(obs.throughputs_kbps)
