"""The rate–quality convex hull across resolutions and the rungs picked on it. Pure.

Quality is SSIM, handled in decibels (``ssim_db = -10 log10(1 - SSIM)``): SSIM crowds
against 1.0 where the eye still sees differences (0.990 -> 0.999 is 20 -> 30 dB), so even
steps in dB are even steps of perceived quality, and the hull is taken in (log rate, dB).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from reelstream.errors import ConfigError
from reelstream.media.ladder.compare import monotone, rate_at_quality

MAX_DB = 60.0  # SSIM 0.999999: a lossless trial would otherwise be infinitely good


def ssim_db(ssim: float) -> float:
    return min(MAX_DB, -10 * math.log10(max(1e-12, 1.0 - ssim)))


@dataclass(frozen=True)
class RatePoint:
    """One trial: the sampled chunks at one resolution and CRF, their mean and peak
    bitrate (kbit/s) and their SSIM against the source."""

    width: int
    height: int
    crf: float
    kbps: float
    ssim: float
    peak_kbps: float = 0.0  # the most any one sample chunk needed

    @property
    def db(self) -> float:
        return ssim_db(self.ssim)


@dataclass(frozen=True)
class ChosenRung:
    """A rung on the hull: its resolution, the CRF it is encoded at, the bitrate and quality
    the trials predict for it, and its cap (the VBV maxrate basis, the manifest's bandwidth)."""

    width: int
    height: int
    crf: float
    expected_kbps: float
    expected_ssim: float
    cap_kbps: int
    fixed: bool = False  # held at a fixed-ladder rung (its cap; its CRF calibrated to that rate)


@dataclass(frozen=True)
class FixedRung:
    """A rung of the fixed ladder the per-title one replaces: at its bitrate the per-title
    ladder must be at least as good as it is."""

    width: int
    height: int
    kbps: int


@dataclass(frozen=True)
class LadderPolicy:
    """What a per-title ladder must satisfy. ``rungs`` is 8..12; the floor rung is at
    ``floor_height`` within ``floor_kbps``; no rung's cap exceeds ``ceiling_kbps``."""

    rungs: int = 10
    floor_height: int = 240
    floor_kbps: int = 400
    ceiling_kbps: int = 8000
    # A rung's cap is at least cap_ratio x its expected mean rate and peak_margin x its busiest
    # sample chunk's: the VBV buffer (2 x cap) must hold a chunk's IDR frame, which on still
    # content is most of the chunk (measured: caps of 1.25 x mean cost a slide 2.5 dB SSIM).
    cap_ratio: float = 1.5
    peak_margin: float = 1.5
    # Adjacent rungs at most this far apart in rate (rungs are added, up to 12, where they are
    # not): even quality steps widen to 2x and more where the curve flattens, and an ABR
    # switching across such a gap leaves bandwidth unused (the default ladder steps <= 2x).
    max_rate_step: float = 1.6
    max_rungs: int = 12
    min_rungs: int = 8  # (an HDR group of a few UHD rungs asks for fewer: per_title.py)
    # The fixed ladder's rungs for this master. Where the per-title ladder, interpolated
    # between its rungs, is not predicted to reach a fixed rung's quality for at least
    # ``anchor_margin`` fewer bits than that rung spends, the fixed rung itself becomes a rung:
    # on a concave curve every chord lies under it, so two per-title rungs around a fixed rung
    # on the same curve are always a little worse at its bitrate (measured: 0.01 dB at
    # 720p/3000k). The margin covers what the sampled trials mispredict of a whole title; it
    # is in bits, not dB, because a dB margin means nothing on grainy content whose whole
    # ladder spans 1 dB SSIM (0.3 dB there kept every fixed rung: BD-rate -3 % for -18 %).
    fixed_rungs: tuple[FixedRung, ...] = ()
    anchor_margin: float = 0.1

    def check(self) -> LadderPolicy:
        if not self.min_rungs <= self.rungs <= self.max_rungs:
            raise ConfigError(f"per-title ladder: rungs must be {self.min_rungs}..{self.max_rungs}, not {self.rungs}")
        if not 0 < self.floor_kbps <= self.ceiling_kbps:
            raise ConfigError(f"per-title ladder: need 0 < floor_kbps ({self.floor_kbps}) <= ceiling_kbps "
                              f"({self.ceiling_kbps})")
        return self


class NotEnoughPoints(ConfigError):
    """The trials do not give a hull to choose from (no points, or none at the floor resolution)."""


def convex_hull(points: Iterable[RatePoint]) -> list[RatePoint]:
    """The upper convex hull of ``points`` in (rate, SSIM dB), rising part only, by rate.

    Each vertex is a measured point; every point below the hull is one that some mix of
    other encodes beats (Netflix's per-title method, across all resolutions at once).
    """
    pts = sorted({(p.kbps, -p.db, p.height): p for p in points if p.kbps > 0}.values(), key=lambda p: (p.kbps, -p.db))
    hull: list[RatePoint] = []
    for p in pts:
        while len(hull) >= 2 and _cross(hull[-2], hull[-1], p) >= 0:
            hull.pop()  # hull[-1] is on or under the chord hull[-2] -> p
        hull.append(p)
    best = max(range(len(hull)), key=lambda i: hull[i].db) if hull else -1
    return hull[:best + 1]


def _cross(a: RatePoint, b: RatePoint, c: RatePoint) -> float:
    return (b.kbps - a.kbps) * (c.db - a.db) - (b.db - a.db) * (c.kbps - a.kbps)


def _curve(points: Sequence[RatePoint]) -> list[RatePoint]:
    """One resolution's points by rising quality, each better and dearer than the one before."""
    out: list[RatePoint] = []
    for p in sorted(points, key=lambda p: (p.kbps, -p.db)):
        if not out or p.db > out[-1].db:
            out.append(p)
    return out


def _at_quality(curve: Sequence[RatePoint], db: float) -> tuple[float, float, float] | None:
    """(crf, kbps, peak_kbps) where this resolution reaches ``db``, interpolated between its trials
    (CRF linearly, rates on a log scale); None when no trial of it reaches ``db``."""
    if not curve or db > curve[-1].db + 1e-9:
        return None
    if db <= curve[0].db:
        p = curve[0]
        return p.crf, p.kbps, p.peak_kbps or p.kbps
    for lo, hi in itertools.pairwise(curve):
        if lo.db <= db <= hi.db:
            t = (db - lo.db) / (hi.db - lo.db)
            return (lo.crf + t * (hi.crf - lo.crf), _logmix(lo.kbps, hi.kbps, t),
                    _logmix(lo.peak_kbps or lo.kbps, hi.peak_kbps or hi.kbps, t))
    return None


def _at_rate(curve: Sequence[RatePoint], kbps: float) -> float | None:
    """The quality (dB) this resolution reaches within ``kbps``; None if no trial fits."""
    fit = [p for p in curve if p.kbps <= kbps]
    if not fit:
        return None
    low = fit[-1]
    above = [p for p in curve if p.kbps > kbps]
    if not above:
        return low.db
    high = above[0]
    t = (math.log(kbps) - math.log(low.kbps)) / (math.log(high.kbps) - math.log(low.kbps))
    return low.db + t * (high.db - low.db)


def _logmix(a: float, b: float, t: float) -> float:
    return math.exp(math.log(a) + t * (math.log(b) - math.log(a)))


def choose_rungs(points: Sequence[RatePoint], policy: LadderPolicy) -> list[ChosenRung]:
    """``policy.rungs`` rungs at evenly spaced SSIM-dB qualities on the hull.

    The lowest is the floor resolution at what it reaches within ``floor_kbps`` (no better
    than where a larger resolution gets cheaper); the highest
    is the best any resolution reaches within ``ceiling_kbps``. Each rung sits on the hull
    segment holding its quality and takes the resolution of that segment's ends that
    reaches the quality for fewer bits (any other resolution only when neither can: never a
    lower one than the rung below, players step resolution up, not down), at the CRF
    interpolated between that resolution's trials; a quality no trial reaches is never
    extrapolated. Where adjacent rungs end up more than ``max_rate_step`` apart in rate, or
    while there are fewer than ``min_rungs``, a rung at the middle quality is added between
    them (up to ``max_rungs``).
    """
    policy.check()
    curves: dict[tuple[int, int], list[RatePoint]] = {}
    for p in points:
        curves.setdefault((p.width, p.height), []).append(p)
    curves = {size: _curve(c) for size, c in curves.items()}
    floor = [size for size in curves if size[1] == policy.floor_height]
    if not floor:
        raise NotEnoughPoints(f"per-title ladder: no trial at the floor height {policy.floor_height}p "
                              f"(trials at {sorted({s[1] for s in curves})})")
    hull = convex_hull(points)
    # The floor rung: what the floor resolution reaches within floor_kbps (its cheapest trial
    # if even that is dearer: the cap then holds it to floor_kbps).
    # Its mean rate leaves the cap the same headroom as every other rung's (cap_ratio).
    at_floor = _at_rate(curves[floor[0]], policy.floor_kbps / policy.cap_ratio)
    low_db = curves[floor[0]][0].db if at_floor is None else at_floor
    # ... but no better than where a larger resolution gets cheaper: a floor rung dearer than
    # the rung above it would be a rung no player should pick.
    low_db = min(low_db, _crossover(curves, floor[0]))
    # The top: the best any resolution reaches within the ceiling (interpolated between its trials).
    within = [db for c in curves.values() if (db := _at_rate(c, policy.ceiling_kbps)) is not None]
    high_db = max([low_db, *within])
    rungs: list[ChosenRung] = []
    for i in range(policy.rungs):
        target = low_db + (high_db - low_db) * (i / (policy.rungs - 1) if policy.rungs > 1 else 1.0)
        rung = _rung_at(curves, hull, policy, target, [floor[0]] if i == 0 else None,
                        rungs[-1].height if rungs else 0, 10**6, policy.floor_kbps if i == 0 else None)
        if rung is not None:  # else no resolution at or above the last rung reaches it
            rungs.append(rung)
    rungs = _distinct(_anchored(_distinct(rungs), curves, policy))
    return _trimmed(_gaps_filled(rungs, curves, hull, policy), policy.max_rungs)


def _gaps_filled(rungs: list[ChosenRung], curves: dict[tuple[int, int], list[RatePoint]],
                 hull: Sequence[RatePoint], policy: LadderPolicy) -> list[ChosenRung]:
    """A rung at the middle quality added where two rungs are over ``max_rate_step`` apart, and
    in the widest gaps while the ladder has fewer than ``min_rungs`` (even quality steps that
    collapse into one another, or land on one resolution's cheapest trial, leave fewer)."""
    unsplittable: set[int] = set()
    while len(rungs) < policy.max_rungs:
        gaps = [(b.expected_kbps / a.expected_kbps, i) for i, (a, b) in enumerate(itertools.pairwise(rungs))
                if i not in unsplittable]
        ratio, i = max(gaps, default=(0.0, -1))
        if i < 0 or (ratio <= policy.max_rate_step and len(rungs) >= policy.min_rungs):
            break
        lo, hi = rungs[i], rungs[i + 1]
        middle = _rung_at(curves, hull, policy, (ssim_db(lo.expected_ssim) + ssim_db(hi.expected_ssim)) / 2, None,
                          lo.height, hi.height, None)
        if middle is None or not lo.expected_kbps < middle.expected_kbps < hi.expected_kbps:
            unsplittable.add(i)
            continue
        split = _distinct([*rungs[:i + 1], middle, *rungs[i + 1:]])
        if len(split) <= len(rungs):  # the middle rung was no rung of its own (``_distinct``)
            unsplittable.add(i)
            continue
        rungs, unsplittable = split, set()
    return rungs


def _anchored(rungs: list[ChosenRung], curves: dict[tuple[int, int], list[RatePoint]],
              policy: LadderPolicy) -> list[ChosenRung]:
    """The ladder with every fixed rung it does not clearly beat (``anchor_margin``) added as a
    rung of its own (``ChosenRung.fixed``): the same resolution and cap, so encoded at the CRF
    the fixed ladder's calibration gives it, it is the fixed rung, and the per-title ladder is
    at least as good at its bitrate. Rungs it makes redundant (within 20 % of its rate, or
    out of height order with it) go."""
    for f in sorted(policy.fixed_rungs, key=lambda f: f.kbps):
        curve = curves.get((f.width, f.height))
        if not curve:
            continue  # a resolution the master does not have: not in this title's fixed ladder
        db = _at_rate(curve, f.kbps)
        if db is None:
            # Even its cheapest trial (CRF 36) is dearer: the cap holds the fixed rung under
            # anything measured, so no trial predicts it (said in the README).
            continue
        crf, kbps, _ = _at_quality(curve, db) or (curve[-1].crf, curve[-1].kbps, 0.0)
        # Content too simple to spend the rate: the fixed rung is its best trial (its
        # calibration runs out of CRF), which the top rung reaches too (calibrated to the
        # ceiling); it is compared where it lands, without the margin, and once per height.
        starved = kbps < 0.95 * f.kbps
        need = _rate_for(rungs, db)
        if need is not None and need <= kbps * (1 - (0.0 if starved else policy.anchor_margin)) * (1 + 1e-3):
            continue
        if starved and any(r.fixed and r.height == f.height and r.expected_kbps == round(kbps, 1) for r in rungs):
            continue
        anchor = ChosenRung(f.width, f.height, round(crf, 2), round(kbps, 1), round(1 - 10 ** (-db / 10), 8),
                            f.kbps, fixed=True)
        rungs = sorted([r for i, r in enumerate(rungs) if r.fixed or not _displaced(r, anchor, i, len(rungs))]
                       + [anchor], key=lambda r: (r.expected_kbps, r.height))
    return rungs


def _rate_for(rungs: Sequence[ChosenRung], db: float) -> float | None:
    """The bitrate at which the ladder (interpolated between its rungs on log rate) reaches
    ``db``: its lowest rung's when that is already better; None when no rung reaches it."""
    ladder = monotone([(r.expected_kbps, ssim_db(r.expected_ssim)) for r in rungs])
    if ladder and db <= ladder[0][1]:
        return ladder[0][0]
    return rate_at_quality(ladder, db)


def _displaced(rung: ChosenRung, anchor: ChosenRung, index: int, count: int) -> bool:
    """Whether a fixed-rung anchor takes ``rung``'s place: the same rendition, out of height
    order with it, or (the floor and the top rungs aside) within 20 % of its rate."""
    if rung.height == anchor.height and rung.cap_kbps == anchor.cap_kbps:
        return True
    below = rung.expected_kbps < anchor.expected_kbps
    if (below and rung.height > anchor.height) or (not below and rung.height < anchor.height):
        return True
    near = max(rung.expected_kbps, anchor.expected_kbps) < 1.2 * min(rung.expected_kbps, anchor.expected_kbps)
    return near and index not in (0, count - 1)


def _trimmed(rungs: list[ChosenRung], most: int) -> list[ChosenRung]:
    """At most ``most`` rungs: the rung whose neighbours are closest in rate goes first (never
    the floor, the top or a fixed-rung anchor)."""
    while len(rungs) > most:
        spare = [(rungs[i + 1].expected_kbps / rungs[i - 1].expected_kbps, i) for i in range(1, len(rungs) - 1)
                 if not rungs[i].fixed]
        if not spare:
            break
        rungs = rungs[:min(spare)[1]] + rungs[min(spare)[1] + 1:]
    return rungs


def _rung_at(curves: dict[tuple[int, int], list[RatePoint]], hull: Sequence[RatePoint], policy: LadderPolicy,
             target: float, only: list[tuple[int, int]] | None, min_height: int, max_height: int,
             cap_limit: int | None) -> ChosenRung | None:
    """The rung reaching ``target`` dB for the fewest bits on the hull segment holding it (any
    resolution within the height bounds when neither end of that segment can)."""
    allowed = [s for s in curves if min_height <= s[1] <= max_height]
    on_hull = [s for s in _bracket(hull, target) if s in allowed]
    best = None
    for sizes in (only,) if only else (on_hull, allowed):
        for size in sizes:
            at = _at_quality(curves[size], target)
            if at is not None and (best is None or at[1] < best[1][1]):
                best = (size, at)
        if best is not None:
            break
    if best is None:
        return None
    (width, height), (crf, kbps, peak) = best
    cap = round(min(cap_limit or policy.ceiling_kbps, max(kbps * policy.cap_ratio, peak * policy.peak_margin, 50)))
    return ChosenRung(width, height, round(crf, 2), round(kbps, 1), round(1 - 10 ** (-target / 10), 8), cap)


def _crossover(curves: dict[tuple[int, int], list[RatePoint]], floor: tuple[int, int], step: float = 0.05) -> float:
    """The best quality at which the floor resolution is still the cheapest way to get it."""
    own = curves[floor]
    db = own[0].db
    while db <= own[-1].db:
        mine = _at_quality(own, db)
        assert mine is not None
        for size, curve in curves.items():
            # (a resolution whose cheapest trial is already better counts: it reaches db there)
            other = _at_quality(curve, db) if size[1] > floor[1] else None
            if other is not None and other[1] < mine[1]:
                return max(own[0].db, db - step)
        db += step
    return own[-1].db


def _bracket(hull: Sequence[RatePoint], db: float) -> list[tuple[int, int]]:
    """The resolutions of the hull vertices on either side of quality ``db``: the hull segment
    the rung sits on (a resolution off the hull there costs more for that quality)."""
    for lo, hi in itertools.pairwise(hull):
        if lo.db <= db <= hi.db:
            return [(lo.width, lo.height), (hi.width, hi.height)]
    edge = hull[0] if hull and db < hull[0].db else hull[-1] if hull else None
    return [(edge.width, edge.height)] if edge else []


def _distinct(rungs: list[ChosenRung]) -> list[ChosenRung]:
    """Rendition ids are codec-height-cap, so two rungs at one height need different caps.
    From the top down (the top rung keeps its cap, the ceiling holds): a rung at a height and
    CRF no cheaper (or under 5 % cheaper) than the rung above is dropped; one capped at or
    above the next one of its height is capped just below it. Fixed-rung anchors are neither
    dropped nor re-capped."""
    out: list[ChosenRung] = []
    for rung in reversed(rungs):
        above = out[-1] if out and out[-1].height == rung.height else None
        if above is not None and (_redundant(rung, above) or rung.cap_kbps >= above.cap_kbps):
            if rung.fixed:
                # A fixed-rung anchor stays as it is: the per-title rung above it goes, unless
                # that is the top rung (it holds the ceiling; their caps differ).
                if not above.fixed and len(out) > 1:
                    out.pop()
            elif _redundant(rung, above):
                continue  # not (5 %) cheaper than the rung above at its height: a rung no ABR needs
            else:
                rung = replace(rung, cap_kbps=above.cap_kbps - 1)
        out.append(rung)
    return out[::-1]


def _redundant(rung: ChosenRung, above: ChosenRung) -> bool:
    """``rung`` is no rung of its own under ``above`` (at its height): no higher CRF, or under 5 % cheaper."""
    return rung.crf <= above.crf or above.cap_kbps <= 50 or rung.expected_kbps > 0.95 * above.expected_kbps
