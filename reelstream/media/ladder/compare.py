"""Comparing two ladders measured on the same title. Pure.

A ladder's curve is its rungs as (kbit/s, SSIM dB), made monotone (a rung no better than a
cheaper one is dropped: a player would never pick it). Rates are compared on a log scale.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

Curve = Sequence[tuple[float, float]]  # (kbps, quality dB)


def monotone(points: Curve) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for kbps, db in sorted(points):
        if not out or db > out[-1][1]:
            out.append((kbps, db))
    return out


def quality_at_rate(curve: Curve, kbps: float) -> float | None:
    """The quality a player gets within ``kbps`` (interpolated between rungs on log rate; the top
    rung's beyond it); None below the lowest rung's rate (the ladder has nothing that cheap)."""
    c = monotone(curve)
    if not c or kbps < c[0][0] * (1 - 1e-9):
        return None
    for (r1, q1), (r2, q2) in itertools.pairwise(c):
        if r1 <= kbps <= r2:
            return q1 + (math.log(kbps) - math.log(r1)) / (math.log(r2) - math.log(r1)) * (q2 - q1)
    return c[-1][1]


def rate_at_quality(curve: Curve, db: float) -> float | None:
    """The bitrate at which the ladder reaches ``db`` (log-interpolated); None outside its range."""
    c = monotone(curve)
    for (r1, q1), (r2, q2) in itertools.pairwise(c):
        if q1 <= db <= q2:
            return math.exp(math.log(r1) + (db - q1) / (q2 - q1) * (math.log(r2) - math.log(r1)))
    if c and abs(c[0][1] - db) < 1e-9:
        return c[0][0]
    return None


def bd_rate(anchor: Curve, test: Curve, steps: int = 200) -> float | None:
    """Bjøntegaard delta rate of ``test`` against ``anchor``: the mean relative bitrate
    difference at equal quality over the qualities both reach (piecewise-linear in log rate
    instead of the cubic fit, which overshoots on ladders this uneven). -0.25 = 25 % fewer
    bits. None when the quality ranges do not overlap."""
    a, t = monotone(anchor), monotone(test)
    if len(a) < 2 or len(t) < 2:
        return None
    low, high = max(a[0][1], t[0][1]), min(a[-1][1], t[-1][1])
    if high <= low:
        return None
    diffs = []
    for i in range(steps + 1):
        db = low + (high - low) * i / steps
        ra, rt = rate_at_quality(a, db), rate_at_quality(t, db)
        if ra is not None and rt is not None:
            diffs.append(math.log(rt) - math.log(ra))
    return math.exp(sum(diffs) / len(diffs)) - 1 if diffs else None
