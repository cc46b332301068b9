"""A stochastic dynamic-programming ABR over a link model learned from traces (research).

Where :class:`~reelstream.player.abr.reelstream.ReelStreamMpc` plans 5 chunks on one
cautious bandwidth figure and guards against collapses with hand-set rules, this
controller prices risk with probabilities: it solves, once per title, the Markov
decision process of the whole session (every chunk to the last) by backward induction,
with

* state: buffer (0.5-s grid up to the 60-s cap), last rung, and the link as the player
  sees it: the last throughput sample and a harmonic moving average of all samples
  (``LEVEL_WEIGHT``), both on a log-spaced grid;
* action: the next chunk's rung, its real size from the manifest;
* outcome: the next throughput sample, drawn from a :class:`LinkModel` fitted on traces:
  the distribution of ln(next sample / average), given how the last sample stood against
  the average (5 trend buckets) and the average's level (5 buckets);
* reward: QoE_lin of the chunk (bitrate in Mbit/s, |change|) minus ``mu`` per second of
  stall. ``mu`` above QoE_lin's 4.3 buys stall time with bitrate; it is chosen per
  session from the link's jitter (mean |ln step| between samples): jittery (mobile)
  links get the cautious ``mu``, steady ones the bolder one, and too few samples count
  as jittery.

It keeps the product's buffer floor as a hard rule at decision time: a rung above the
lowest is never fetched if, at a cautious throughput (the model's ``floor_quantile`` of
the next sample), its download would leave the buffer under ``floor_s`` and smaller
than now, so quality drops before the buffer falls under 10 s. It binds rarely: it
costs 0.2-0.3 % of QoE_lin on the tuning halves and changes no stall. The product's 30-s
target is not a rule here: the solve already holds more than 30 s wherever stalls are
priced high, and a cost per second short of 30 s made it worse (docs/abr-tuning.md, round 6).

It reads only the observation (no trace, no clock); the solved value tables are memoised
per (model, mu, sizes), so a decision is a lookup plus one expectation. It is research,
not the default; ``bench/abr.py --sdp`` fits the model on the tuning halves and reports
it against the targets.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import numpy as np

from reelstream.player.abr.interface import AbrAlgorithm, Observation
from reelstream.player.abr.reelstream import volatility

LEVEL_WEIGHT = 0.25
TREND_EDGES = (-0.5, -0.2, 0.1, 0.4)            # ln(last sample / average)
LEVEL_EDGES_KBPS = (500.0, 1000.0, 2000.0, 4000.0)
OUTCOMES = np.arange(-3.6, 2.4001, 0.15)        # ln(next sample / average), bin centres
LINK_GRID_KBPS = np.exp(np.linspace(math.log(80.0), math.log(12000.0), 16))
BUFFER_STEP_S = 0.5
BUFFER_CAP_S = 60.0
MIN_CELL_SAMPLES = 100


def next_level(level_kbps: float, sample_kbps: float) -> float:
    """Harmonic moving average: one sample weighs LEVEL_WEIGHT."""
    return 1.0 / (LEVEL_WEIGHT / sample_kbps + (1.0 - LEVEL_WEIGHT) / level_kbps)


def link_level(throughputs_kbps: Sequence[float]) -> float:
    level = max(throughputs_kbps[0], 1.0)
    for sample in throughputs_kbps[1:]:
        level = next_level(level, max(sample, 1.0))
    return level


def context(last_kbps: float, level_kbps: float) -> tuple[int, int]:
    """(trend bucket, level bucket) the model conditions the next sample on."""
    trend = math.log(max(last_kbps, 1.0) / level_kbps)
    return (int(np.searchsorted(TREND_EDGES, trend)),
            int(np.searchsorted(LEVEL_EDGES_KBPS, level_kbps)))


def jitter(throughputs_kbps: Sequence[float], window: int = 10) -> float:
    """Mean |ln(sample / previous)| over the last ``window`` samples (0 with fewer than 2)."""
    return volatility(throughputs_kbps, window)


@dataclass(frozen=True)
class LinkModel:
    """Counts of ln(next sample / average) per (trend, level) context and outcome bin."""

    counts: tuple[tuple[tuple[int, ...], ...], ...]

    @classmethod
    def fit(cls, sessions: Iterable[Sequence[float]]) -> LinkModel:
        """Count, over sessions' throughput samples (kbit/s, in order), where each sample
        fell relative to the average of the ones before it."""
        counts = np.zeros((len(TREND_EDGES) + 1, len(LEVEL_EDGES_KBPS) + 1, len(OUTCOMES)), int)
        for samples in sessions:
            if not samples:
                continue
            level = max(samples[0], 1.0)
            for previous, sample in pairwise(samples):
                sample = max(sample, 1.0)
                trend, bucket = context(previous, level)
                step = round((math.log(sample / level) - OUTCOMES[0]) / (OUTCOMES[1] - OUTCOMES[0]))
                counts[trend, bucket, min(max(step, 0), len(OUTCOMES) - 1)] += 1
                level = next_level(level, sample)
        return cls(tuple(tuple(tuple(int(c) for c in row) for row in plane) for plane in counts))

    def probabilities(self) -> np.ndarray:
        """[trend, level, outcome]; a context with fewer than MIN_CELL_SAMPLES samples
        borrows the distribution of its trend bucket over every level, or failing that
        of every context."""
        counts = np.array(self.counts, dtype=float)
        by_trend = counts.sum(axis=1)
        overall = counts.sum(axis=(0, 1))
        if overall.sum() == 0:
            raise ValueError("link model has no samples; fit it on sessions with throughputs")
        out = np.empty_like(counts)
        for trend in range(counts.shape[0]):
            for level in range(counts.shape[1]):
                row = counts[trend, level]
                if row.sum() < MIN_CELL_SAMPLES:
                    row = by_trend[trend] if by_trend[trend].sum() >= MIN_CELL_SAMPLES else overall
                out[trend, level] = row / row.sum()
        return out

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.counts).encode()).hexdigest()[:16]

    def save(self, path: Path) -> None:
        path.write_text(json.dumps({"outcomes_log_ratio": [round(float(z), 4) for z in OUTCOMES],
                                    "counts": self.counts}) + "\n")

    @classmethod
    def load(cls, path: Path) -> LinkModel:
        data = json.loads(path.read_text())
        if len(data["outcomes_log_ratio"]) != len(OUTCOMES):
            raise ValueError(f"{path}: fitted with another outcome grid; refit it")
        return cls(tuple(tuple(tuple(row) for row in plane) for plane in data["counts"]))


def _nearest(grid: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Index of the grid point nearest each value, on a log scale."""
    upper = np.clip(np.searchsorted(grid, values), 1, len(grid) - 1)
    closer_low = np.log(values / grid[upper - 1]) < np.log(grid[upper] / values)
    return np.where(closer_low, upper - 1, upper)


# (model digest, mu, ladder, chunk s) -> [(sizes of the whole title, value tables)]: later
# decisions of a session ask for a suffix of the same title and reuse the solve. A 48-chunk
# title's tables take about 70 MB, so only the last MAX_SOLVED solves are kept.
_SOLVED: dict[tuple[object, ...], list[tuple[tuple[tuple[float, ...], ...], list[np.ndarray]]]] = {}
MAX_SOLVED = 4


class _Outcomes:
    """Per link-grid state: outcome probabilities, sample values and next states."""

    def __init__(self, model: LinkModel) -> None:
        probs = model.probabilities()
        n = len(LINK_GRID_KBPS)
        self.probs = np.empty((n, n, len(OUTCOMES)))
        for last in range(n):
            for level in range(n):
                self.probs[last, level] = probs[context(LINK_GRID_KBPS[last], LINK_GRID_KBPS[level])]
        samples = LINK_GRID_KBPS[None, :, None] * np.exp(OUTCOMES)[None, None, :]
        self.samples = np.broadcast_to(samples, (n, n, len(OUTCOMES)))
        levels = 1.0 / (LEVEL_WEIGHT / self.samples + (1 - LEVEL_WEIGHT) / LINK_GRID_KBPS[None, :, None])
        self.next_state = _nearest(LINK_GRID_KBPS, self.samples) * n + _nearest(LINK_GRID_KBPS, levels)


def _interpolate(table: np.ndarray, buffer_s: np.ndarray, state: np.ndarray) -> np.ndarray:
    """table[buffer index, flat link state], linear in the buffer."""
    position = buffer_s / BUFFER_STEP_S
    low = np.clip(np.floor(position).astype(int), 0, table.shape[0] - 2)
    weight = position - low
    values: np.ndarray = (1.0 - weight) * table[low, state] + weight * table[low + 1, state]
    return values


def solve(model: LinkModel, mu: float, sizes: Sequence[Sequence[float]],
          bitrates_kbps: Sequence[float], chunk_s: float) -> list[np.ndarray]:
    """Value tables V[k][buffer, last rung, flat link state] for chunks k.. to the end
    (V[len(sizes)] = 0): the best expected sum of the chunks' QoE_lin to come, stalls
    priced at ``mu`` per second."""
    key = (model.digest, mu, tuple(bitrates_kbps), chunk_s)
    wanted = tuple(tuple(float(b) for b in row) for row in sizes)
    for title, tables in _SOLVED.get(key, []):
        skip = len(title) - len(wanted)
        if skip >= 0 and title[skip:] == wanted:
            return tables[skip:]
    outcomes = _Outcomes(model)
    quality = np.asarray(bitrates_kbps) / 1000.0
    switch = quality[None, :] - np.abs(quality[None, :] - quality[:, None])   # [last, next]
    buffers = np.arange(0.0, BUFFER_CAP_S + 1e-9, BUFFER_STEP_S)[:, None, None, None]
    n = len(LINK_GRID_KBPS)
    values = [np.zeros((len(buffers), len(quality), n * n))]
    for k in range(len(sizes) - 1, -1, -1):
        expected = np.empty((len(buffers), n * n, len(quality)))
        for rung in range(len(quality)):
            download = sizes[k][rung] * 8 / 1000 / outcomes.samples
            stall = np.maximum(download - buffers, 0.0)
            after = np.minimum(np.maximum(buffers - download, 0.0) + chunk_s, BUFFER_CAP_S)
            future = _interpolate(values[0][:, rung], after, outcomes.next_state[None])
            expected[..., rung] = ((future - mu * stall) * outcomes.probs[None]).sum(-1).reshape(
                len(buffers), n * n)
        best = (expected[:, None, :, :] + switch[None, :, None, :]).max(axis=-1)
        values.insert(0, best)
    _SOLVED.setdefault(key, []).append((wanted, values))
    _forget_oldest()
    return values


def _forget_oldest() -> None:
    """Drop the oldest solves beyond MAX_SOLVED (dicts and lists keep insertion order)."""
    while sum(len(solves) for solves in _SOLVED.values()) > MAX_SOLVED:
        oldest = next(iter(_SOLVED))
        _SOLVED[oldest].pop(0)
        if not _SOLVED[oldest]:
            del _SOLVED[oldest]


class SdpAbr(AbrAlgorithm):
    """Backward-induction ABR on a fitted :class:`LinkModel` (see the module docstring)."""

    name = "SDP"

    def __init__(self, model: LinkModel, cautious_mu: float = 150.0, bold_mu: float = 50.0,
                 jitter_edge: float = 0.1, min_samples: int = 3, floor_s: float = 10.0,
                 floor_quantile: float = 0.2) -> None:
        self.model = model
        self.cautious_mu, self.bold_mu = cautious_mu, bold_mu
        self.jitter_edge, self.min_samples = jitter_edge, min_samples
        self.floor_s, self.floor_quantile = floor_s, floor_quantile
        self._probs = model.probabilities()

    def mu(self, throughputs_kbps: Sequence[float]) -> float:
        """Stall price for this session: cautious on a jittery link or with little history."""
        if len(throughputs_kbps) < self.min_samples or jitter(throughputs_kbps) >= self.jitter_edge:
            return self.cautious_mu
        return self.bold_mu

    def choose(self, obs: Observation) -> int:
        samples = obs.throughputs_kbps
        if not samples:
            return 0
        mu = self.mu(samples)
        sizes = [[float(size) for size in row] for row in obs.upcoming_sizes_bytes[:obs.chunks_remaining]]
        sizes += [[rate * obs.chunk_duration_s * 125 for rate in obs.bitrates_kbps]] * (
            obs.chunks_remaining - len(sizes))
        after_this = solve(self.model, mu, sizes, obs.bitrates_kbps, obs.chunk_duration_s)[1]
        level = link_level(samples)
        probs = self._probs[context(samples[-1], level)]
        outcome = level * np.exp(OUTCOMES)
        n = len(LINK_GRID_KBPS)
        state = _nearest(LINK_GRID_KBPS, outcome) * n + _nearest(
            LINK_GRID_KBPS, 1.0 / (LEVEL_WEIGHT / outcome + (1 - LEVEL_WEIGHT) / level))
        quality = np.asarray(obs.bitrates_kbps) / 1000.0
        last = quality[obs.last_rung if obs.last_rung is not None else 0]
        scores = []
        for rung in range(obs.rungs):
            download = sizes[0][rung] * 8 / 1000 / outcome
            stall = np.maximum(download - obs.buffer_s, 0.0)
            after = np.minimum(np.maximum(obs.buffer_s - download, 0.0) + obs.chunk_duration_s,
                               BUFFER_CAP_S)
            future = _interpolate(after_this[:, rung], after, state)
            scores.append(quality[rung] - abs(quality[rung] - last)
                          + float((probs * (future - mu * stall)).sum()))
        cautious_kbps = outcome[min(int(np.searchsorted(np.cumsum(probs), self.floor_quantile)),
                                    len(outcome) - 1)]
        for rung in range(1, obs.rungs):
            left = obs.buffer_s - sizes[0][rung] * 8 / 1000 / cautious_kbps + obs.chunk_duration_s
            if left < self.floor_s and left < obs.buffer_s:
                scores[rung] = -math.inf
        return int(np.argmax(scores))
