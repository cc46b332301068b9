"""Joint search over ReelStreamMPC's knobs: how much QoE the HSDPA rebuffer target costs.

Rounds 4 to 9 (docs/abr-tuning.md) moved ReelStreamMPC's knobs one or two at a time.
This searches all of them together: settings drawn at random from the ranges in SPACE,
and mutations of the best found so far (one to three knobs drawn afresh). Each setting
is played on the *tuning halves only*, at the protocol's starts and with every trace also
started from ``--offsets`` seeded random indexes (round 5's rule), against BOLA's stall
time and RobustMPC's QoE_lin on the same sessions.

A setting is *feasible* when, on every tuning half searched and at both kinds of start, its
QoE_lin is at least 1.05x RobustMPC's and it stalls no longer than BOLA. The search
maximises the lowest of its four QoE ratios less ``STALL_PRICE`` per second of stall above
BOLA's (per session start), and prints the frontier: the best lowest ratio reached within
each allowance of stall above BOLA's. The best feasible setting found (or, with none, the
best-scoring one) is then played on the held-out halves once and reported, never chosen on.

    python bench/abr_search.py [--budget N] [--seed S] [--offsets K] [--also KNOBS_JSON]
                               [--sets hsdpa,fcc] [--tuning-only]

``--sets hsdpa`` searches for one set alone (round 11: what the HSDPA target costs when
FCC's QoE is out of the objective, the best a link-class switch could hope for).
``--budget 0 --tuning-only --also A --also B ...`` plays given settings only, on the tuning
halves only (round 12's sweeps of the collapse cap): a sweep's settings are not candidates,
so nothing is played on the held-out halves.

Defaults (45 settings after the 2 seeds, 3 offsets) take about 7 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reelstream.player.abr import Bola, ReelStreamMpc, ReelStreamTuning, RobustMpc
from reelstream.player.qoe import SessionMetrics
from reelstream.player.traces import Trace, Video, data_dir, load_traces, load_video


def _bench_abr():
    """bench/abr.py, the sibling script whose split and evaluation this search shares."""
    spec = importlib.util.spec_from_file_location("bench_abr", Path(__file__).with_name("abr.py"))
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    # Registered so that its functions pickle into the worker processes of its Pool.
    sys.modules[spec.name] = module  # type: ignore[union-attr]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


_ABR = _bench_abr()
SETS, evaluate_starts, split = _ABR.SETS, _ABR.evaluate_starts, _ABR.split

QOE_TARGET = 1.05
STALL_PRICE = 0.01          # lowest-ratio points per second of stall above BOLA's
ALLOWANCES_S = (0.0, 3.0, 6.0, 12.0, float("inf"))

Draw = Callable[[random.Random], object]


def _uniform(low: float, high: float) -> Draw:
    return lambda rng: round(rng.uniform(low, high), 4)


def _choice(*values: object) -> Draw:
    return lambda rng: rng.choice(values)


def _off_or(off: object, on: Draw, on_share: float = 0.5) -> Draw:
    return lambda rng: on(rng) if rng.random() < on_share else off


# Every knob of ReelStreamTuning that trades QoE against stalls, with the range searched.
# The product rules (10-s floor, 30-s target) and the planner's horizon stay fixed.
SPACE: Mapping[str, Draw] = {
    "history": _choice(5, 6, 8, 10),
    "error_quantile": _uniform(0.3, 0.9),
    "smooth_penalty": _uniform(1.0, 3.0),
    "fill_weight": _uniform(0.05, 0.5),
    "hold_weight": _uniform(0.5, 4.0),
    "end_margin_s": _uniform(2.0, 16.0),
    "below_floor_share": _uniform(0.3, 0.6),
    "collapse_share": _uniform(1.0, 2.0),
    "collapse_trend": _uniform(0.3, 1.2),
    "collapse_kbps": _uniform(250.0, 900.0),
    "capped_from_rung": _choice(1, 2, 2, 3),
    "collapse_margin_s": _uniform(0.0, 3.0),
    "scenario_weight": _off_or(0.0, _uniform(0.003, 0.05)),
    "scenario_share": _off_or(None, _uniform(0.15, 0.4)),
    "scenario_kbps": _uniform(150.0, 300.0),
    "tail_kbps": _off_or(None, _uniform(250.0, 450.0), on_share=1 / 3),
    "tail_chunks": _choice(4, 6, 8, 10),
}
# Where the search starts: the default and round 4's setting at BOLA's HSDPA stall time.
SEEDS: tuple[dict[str, object], ...] = ({}, {"scenario_weight": 0.03, "scenario_share": 0.25})


def parse_knobs(text: str) -> dict[str, object]:
    """A setting given on the command line: a JSON object whose keys are ReelStreamTuning
    fields (ValueError naming what is wrong otherwise)."""
    try:
        knobs = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"--also wants a JSON object of knobs: {err}") from None
    if not isinstance(knobs, dict):
        raise ValueError(  # noqa: TRY004  (bad user input, reported as a usage error)
            f"--also wants a JSON object of knobs, not {type(knobs).__name__}")
    known = set(asdict(ReelStreamTuning()))
    unknown = sorted(set(knobs) - known)
    if unknown:
        raise ValueError(f"--also: not knobs of ReelStreamTuning: {', '.join(unknown)}")
    return knobs


def parse_sets(text: str) -> tuple[str, ...]:
    """The trace sets to search on, comma-separated (ValueError naming an unknown one)."""
    names = tuple(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))
    unknown = [name for name in names if name not in SETS]
    if unknown or not names:
        raise ValueError(f"--sets: {', '.join(unknown) or 'none given'}; "
                         f"choose from {', '.join(SETS)}")
    return names


def behaviour(knobs: Mapping[str, object]) -> tuple:
    """What a setting makes the controller do: its full tuning, less the knobs of
    features it leaves off (two settings with the same behaviour play the same)."""
    tuning = asdict(replace(ReelStreamTuning(), **knobs))
    if not tuning["scenario_weight"]:
        for knob in ("scenario_kbps", "scenario_share", "scenario_falling", "scenario_volatility"):
            tuning.pop(knob)
    if tuning["tail_kbps"] is None:
        tuning.pop("tail_chunks")
    return tuple(sorted(tuning.items()))


def draw(rng: random.Random) -> dict[str, object]:
    """A setting drawn at random from SPACE."""
    return {knob: pick(rng) for knob, pick in SPACE.items()}


def mutate(parent: Mapping[str, object], rng: random.Random) -> dict[str, object]:
    """``parent`` with one to three knobs drawn afresh (one most often)."""
    child = dict(parent)
    for knob in rng.sample(sorted(SPACE), rng.choice((1, 1, 2, 3))):
        child[knob] = SPACE[knob](rng)
    return child


@dataclass(frozen=True)
class SetFigures:
    """One setting on one tuning half, against the references on the same sessions.

    ``*_protocol`` counts the sessions started where the traces start; ``*_pooled`` adds the
    seeded random starts. Excess is stall seconds above BOLA's (negative: fewer).
    """

    ratio_protocol: float
    excess_protocol_s: float
    ratio_pooled: float
    excess_pooled_s: float
    starts: int

    @property
    def lowest_ratio(self) -> float:
        return min(self.ratio_protocol, self.ratio_pooled)

    @property
    def excess_s(self) -> float:
        """Stall above BOLA's, the pooled figure per start so both kinds weigh alike."""
        return max(self.excess_protocol_s, 0.0) + max(self.excess_pooled_s, 0.0) / self.starts


def feasible(figures: Mapping[str, SetFigures]) -> bool:
    """Both targets on every tuning half at both kinds of start."""
    return all(f.lowest_ratio >= QOE_TARGET and f.excess_protocol_s <= 0.0
               and f.excess_pooled_s <= 0.0 for f in figures.values())


def objective(figures: Mapping[str, SetFigures]) -> float:
    """The lowest QoE ratio, less STALL_PRICE per second of stall above BOLA's."""
    return (min(f.lowest_ratio for f in figures.values())
            - STALL_PRICE * sum(f.excess_s for f in figures.values()))


@dataclass(frozen=True)
class Trial:
    knobs: dict[str, object]
    figures: dict[str, SetFigures]

    @property
    def score(self) -> float:
        return objective(self.figures)

    @property
    def lowest_ratio(self) -> float:
        return min(f.lowest_ratio for f in self.figures.values())

    @property
    def excess_s(self) -> float:
        return sum(f.excess_s for f in self.figures.values())


def frontier(trials: Sequence[Trial], allowances: Sequence[float] = ALLOWANCES_S
             ) -> list[tuple[float, Trial | None]]:
    """For each allowance of stall above BOLA's, the trial with the best lowest QoE ratio
    within it (None where no trial is)."""
    out: list[tuple[float, Trial | None]] = []
    for allowance in allowances:
        within = [t for t in trials if t.excess_s <= allowance]
        out.append((allowance, max(within, key=lambda t: t.lowest_ratio) if within else None))
    return out


def _totals(metrics: Sequence[SessionMetrics]) -> tuple[float, float]:
    return sum(m.qoe["lin"] for m in metrics) / len(metrics), sum(m.stall_s for m in metrics)


class Arena:
    """The tuning (or held-out) halves with the references played once, scoring settings."""

    def __init__(self, video: Video, halves: Mapping[str, list[Trace]], offsets: int,
                 workers: int) -> None:
        self.video, self.halves, self.offsets, self.workers = video, halves, offsets, workers
        self.reference = {s: self._play([Bola(), RobustMpc()], s) for s in halves}

    def _play(self, algos: list, set_name: str) -> dict[str, dict[str, tuple[float, float]]]:
        per_algo = evaluate_starts(algos, self.video, self.halves[set_name], self.workers,
                                   self.offsets)
        protocol = len(self.halves[set_name])
        return {name: {"protocol": _totals(ms[:protocol]), "pooled": _totals(ms)}
                for name, ms in per_algo.items()}

    def figures(self, knobs: Mapping[str, object]) -> dict[str, SetFigures]:
        algo = ReelStreamMpc(replace(ReelStreamTuning(), **knobs))
        out = {}
        for set_name in self.halves:
            ours = self._play([algo], set_name)[algo.name]
            ref = self.reference[set_name]
            ratio = {k: ours[k][0] / ref["RobustMPC"][k][0] for k in ours}
            excess = {k: ours[k][1] - ref["BOLA"][k][1] for k in ours}
            out[set_name] = SetFigures(ratio["protocol"], excess["protocol"], ratio["pooled"],
                                       excess["pooled"], self.offsets + 1)
        return out


def search(arena: Arena, budget: int, seed: int, explore: float = 0.25, keep: int = 8,
           progress: Callable[[int, Trial], None] | None = None,
           starts: Sequence[Mapping[str, object]] = SEEDS) -> list[Trial]:
    """``budget`` settings after the ``starts``: a fresh draw with probability ``explore``,
    else a mutation of one of the ``keep`` best so far (the better, the likelier)."""
    rng = random.Random(seed)
    trials: list[Trial] = []
    played: set[tuple] = set()

    def candidate() -> dict[str, object]:
        if rng.random() < explore:
            return draw(rng)
        best = sorted(trials, key=lambda t: t.score, reverse=True)[:keep]
        return mutate(best[min(int(rng.expovariate(0.6)), len(best) - 1)].knobs, rng)

    for index in range(len(starts) + budget):
        if index < len(starts):
            knobs = dict(starts[index])
        else:
            # A redrawn knob that the setting does not use (the scenario's rate while its
            # weight is 0) would replay a setting already played; draw again instead.
            for _ in range(100):
                knobs = candidate()
                if behaviour(knobs) not in played:
                    break
        played.add(behaviour(knobs))
        trial = Trial(knobs, arena.figures(knobs))
        trials.append(trial)
        if progress:
            progress(index, trial)
    return trials


def _cells(figures: Mapping[str, SetFigures]) -> str:
    return "  ".join(f"{s}: x{f.ratio_protocol:.3f}/{f.ratio_pooled:.3f} "
                     f"+{max(f.excess_protocol_s, 0):.1f}/{max(f.excess_pooled_s, 0):.1f} s"
                     for s, f in figures.items())


def _report(trial: Trial) -> dict[str, float]:
    out: dict[str, float] = {}
    for s, f in trial.figures.items():
        out.update({f"{s}_ratio_protocol": round(f.ratio_protocol, 4),
                    f"{s}_ratio_pooled": round(f.ratio_pooled, 4),
                    f"{s}_stall_above_bola_protocol_s": round(f.excess_protocol_s, 2),
                    f"{s}_stall_above_bola_pooled_s": round(f.excess_pooled_s, 2)})
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=45, help="settings tried after the seeds")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--offsets", type=int, default=3,
                        help="seeded random starts per trace, besides the protocol's")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--also", action="append", default=[], metavar="KNOBS_JSON",
                        help="also start from this setting: a JSON object of knobs, such as "
                             "a previous run's chosen_knobs (repeatable)")
    parser.add_argument("--sets", default=",".join(SETS),
                        help=f"trace sets to search on, comma-separated (default {','.join(SETS)})")
    parser.add_argument("--tuning-only", action="store_true",
                        help="do not play the chosen setting on the held-out halves (for sweeps "
                             "of given settings, which are not candidates)")
    args = parser.parse_args(argv)
    if args.budget < 0 or args.offsets < 0:
        parser.error("--budget and --offsets must be 0 or more")
    try:
        starts = [*SEEDS, *(parse_knobs(text) for text in args.also)]
        sets = parse_sets(args.sets)
    except ValueError as err:
        parser.error(str(err))
    started = time.perf_counter()
    root = data_dir()
    video = load_video(root)
    halves = {s: split(load_traces(root / "traces" / s)) for s in sets}
    arena = Arena(video, {s: h["tune"] for s, h in halves.items()}, args.offsets, args.workers)
    total = len(starts) + args.budget
    print(f"tuning halves, protocol starts and {args.offsets} seeded offsets; "
          f"{total} settings (QoE x protocol/pooled, stall above BOLA's protocol/pooled)")

    def progress(index: int, trial: Trial) -> None:
        # A start setting is named (a sweep reads its rows by it); drawn ones are in the JSON.
        named = f"  {json.dumps(trial.knobs)}" if index < len(starts) else ""
        print(f"[{index + 1:3}/{total}] score {trial.score:.4f}  {_cells(trial.figures)}{named}",
              flush=True)

    trials = search(arena, args.budget, args.seed, progress=progress, starts=starts)
    print("\nfrontier on the tuning halves: best lowest QoE ratio within each allowance of "
          "stall above BOLA's (protocol + pooled per start, every set searched)")
    print(f"{'allowance':>10} {'lowest x':>9}  figures")
    out: dict[str, object] = {"settings_tried": total, "seed": args.seed, "offsets": args.offsets,
                              "sets": list(sets),
                              "also_started_from": starts[len(SEEDS):]}
    for allowance, best in frontier(trials):
        label = "any" if allowance == float("inf") else f"{allowance:.0f} s"
        if best is None:
            print(f"{label:>10} {'-':>9}  no setting")
            continue
        print(f"{label:>10} {best.lowest_ratio:9.3f}  {_cells(best.figures)}")
        out[f"frontier_{label.replace(' ', '')}_lowest_ratio"] = round(best.lowest_ratio, 4)
    found = [t for t in trials if feasible(t.figures)]
    chosen = max(found or trials, key=lambda t: t.score)
    print(f"\nfeasible on the tuning halves: {len(found)} of {total}")
    print(f"{'best feasible' if found else 'best-scoring (not feasible)'}: "
          f"{json.dumps(chosen.knobs)}")
    out.update({"feasible_settings": len(found), "chosen_knobs": chosen.knobs,
                "chosen_tuning": asdict(replace(ReelStreamTuning(), **chosen.knobs)),
                **{f"tune_{k}": v for k, v in _report(chosen).items()},
                "tuning_feasible_setting_found_met": bool(found)})
    if args.tuning_only:
        print("held-out halves not played (--tuning-only)")
    else:
        held_out = Arena(video, {s: h["holdout"] for s, h in halves.items()}, args.offsets,
                         args.workers).figures(chosen.knobs)
        print(f"its held-out figures (reported, not chosen on): {_cells(held_out)}")
        out.update({**{f"holdout_{k}": v for k, v in _report(Trial(chosen.knobs, held_out)).items()},
                    "holdout_both_targets_met": feasible(held_out)})
    out["elapsed_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
