"""ABR benchmark: every algorithm on the HSDPA and FCC trace sets, Pensieve simulator.

    python bench/abr.py            # evaluate, print tables, write bench/out/abr.png,
                                   # end with one JSON line of every figure and target
    python bench/abr.py --tune     # grid-search ReelStreamMPC on the tuning half only
    python bench/abr.py --start-seed 1   # the same, every trace started at a random
                                         # index (robustness check, not the protocol)
    python bench/abr.py --pareto   # the QoE / rebuffer trade-off of the knobs that buy
                                   # stall time (end-of-title insurance, collapse scenario)
    python bench/abr.py --sdp      # fit a link model on the tuning halves, then report the
                                   # stochastic-DP controller (research, not the default)
    python bench/abr.py --sdp --sdp-mu 100,30   # ... at other stall prices (cautious, bold)
    python bench/abr.py --bola-targets 60,40,30,22   # the HSDPA target's yardstick: BOLA
                                   # at other buffer targets beside the default
    python bench/abr.py --pareto --offsets 3   # ... each trace also started at 3 seeded
                                   # random indexes (4 sessions per trace: one trace's
                                   # chance stall no longer decides a portion)

Split: traces are sorted by file name and grouped by recording (an HSDPA file is one
recording; an FCC file is one window of a measurement, and windows of one measurement
overlap); recordings go alternately to the tuning half (even) and the held-out half
(odd), so no recording sits on both sides. Until session 12 the split was by file, which
put windows of one FCC measurement on both sides; the HSDPA halves are the same either
way. ReelStreamMPC's defaults were chosen with ``--tune`` on the tuning halves; the targets
are checked on the held-out half and on the whole set (all three portions are printed),
each with how firm it is: the share of sets resampled, by recording, from the portion
that meet it. Data: ``$REEL_ABR_DATA`` or ``<repo>/../shared/abr``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from multiprocessing import Pool
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reelstream.player.abr import (
    AbrAlgorithm,
    AlwaysLowest,
    Bola,
    BufferBased,
    Mpc,
    ReelStreamMpc,
    ReelStreamTuning,
    RobustMpc,
    ThroughputRule,
)
from reelstream.player.abr.bola import RESERVOIR_S
from reelstream.player.abr.sdp import LinkModel, SdpAbr
from reelstream.player.qoe import SessionMetrics, measure
from reelstream.player.simulator import SimConfig, simulate
from reelstream.player.traces import Trace, Video, data_dir, load_traces, load_video, recording_of
from reelstream.player.verdict import (
    TargetOdds,
    TraceTotals,
    target_odds,
    totals_by_recording,
    totals_by_trace,
)

SETS = ("hsdpa", "fcc")
PORTIONS = ("tune", "holdout", "all")
SPLIT = ("recordings in sorted file-name order, alternately tune / holdout (even / odd); "
         "an HSDPA file is one recording, an FCC file one window of a measurement")
DEFAULT = "ReelStreamMPC"
T = TypeVar("T")
OUT = Path(__file__).resolve().parent / "out"


def algorithms() -> list[AbrAlgorithm]:
    """Everything compared, the reference floor first and ReelStream's default last."""
    return [AlwaysLowest(), ThroughputRule(), BufferBased(), Bola(), Mpc(), RobustMpc(),
            ReelStreamMpc()]


def split(traces: Sequence[T]) -> dict[str, list[T]]:
    """The tuning / held-out / whole partition of one (name-sorted) set, of traces or of
    their names: recordings in order of first file, alternately to each half, so that
    overlapping windows of one FCC measurement never sit on both sides."""
    halves: tuple[list[T], list[T]] = ([], [])
    order: dict[str, int] = {}
    for item in traces:
        recording = recording_of(item if isinstance(item, str) else item.name)  # type: ignore[attr-defined]
        halves[order.setdefault(recording, len(order)) % 2].append(item)
    return {"tune": halves[0], "holdout": halves[1], "all": list(traces)}


Job = tuple[AbrAlgorithm, Video, list[Trace], SimConfig]


def _run(job: Job) -> list[SessionMetrics]:
    algorithm, video, traces, config = job
    return [measure(simulate(t, video, algorithm, config), video.bitrates_kbps, video.chunk_s)
            for t in traces]


def run_all(jobs: list[Job], workers: int) -> list[list[SessionMetrics]]:
    """Run jobs in parallel; simulations are pure, so order and workers don't matter."""
    if workers <= 1:
        return [_run(j) for j in jobs]
    with Pool(workers) as pool:
        return pool.map(_run, jobs, chunksize=1)


def _batches(traces: list[Trace], size: int) -> list[list[Trace]]:
    return [traces[i:i + size] for i in range(0, len(traces), size)]


def evaluate(algos: Sequence[AbrAlgorithm], video: Video, traces: list[Trace],
             workers: int, config: SimConfig | None = None) -> dict[str, list[SessionMetrics]]:
    """Metrics per algorithm name, in trace order."""
    jobs = [(a, video, b, config or SimConfig()) for a in algos for b in _batches(traces, 12)]
    results = run_all(jobs, workers)
    by_algo: dict[str, list[SessionMetrics]] = {a.name: [] for a in algos}
    for (algo, _, _, _), metrics in zip(jobs, results):
        by_algo[algo.name].extend(metrics)
    return by_algo


def evaluate_starts(algos: Sequence[AbrAlgorithm], video: Video, traces: list[Trace],
                    workers: int, offsets: int = 0) -> dict[str, list[SessionMetrics]]:
    """Like :func:`evaluate`, each trace played from its start and then from ``offsets``
    seeded random indexes (seeds 1..offsets); the sessions of every start are pooled."""
    pooled: dict[str, list[SessionMetrics]] = {a.name: [] for a in algos}
    for seed in (None, *range(1, offsets + 1)):
        for name, metrics in evaluate(algos, video, traces, workers,
                                      SimConfig(start_seed=seed)).items():
            pooled[name].extend(metrics)
    return pooled


def starts_label(offsets: int) -> str:
    return "each trace from its start" + (
        f" and from {offsets} seeded random indexes (seeds 1-{offsets})" if offsets else "")


def summarize(metrics: Sequence[SessionMetrics]) -> dict[str, float]:
    """Set-level figures: means over sessions, rebuffer ratio pooled over sessions."""
    n = len(metrics)
    stall = sum(m.stall_s for m in metrics)
    play = sum(m.play_s for m in metrics)
    return {
        "qoe_lin": sum(m.qoe["lin"] for m in metrics) / n,
        "qoe_log": sum(m.qoe["log"] for m in metrics) / n,
        "qoe_hd": sum(m.qoe["hd"] for m in metrics) / n,
        "rebuffer_pct": 100.0 * stall / (stall + play),
        "avg_bitrate_kbps": sum(m.avg_bitrate_kbps for m in metrics) / n,
        "switches": sum(m.switches for m in metrics) / n,
        "smoothness_mbps": sum(m.smoothness_mbps for m in metrics) / n,
        "startup_s": sum(m.startup_s for m in metrics) / n,
        "sessions": float(n),
    }


def by_portion(per_trace: dict[str, list[SessionMetrics]],
               names: list[str]) -> dict[str, dict[str, dict[str, float]]]:
    """portion -> algorithm -> summary, using the trace names' positions for the split."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for portion in PORTIONS:
        keep = set(split(names)[portion])
        out[portion] = {algo: summarize([m for m in ms if m.trace in keep])
                        for algo, ms in per_trace.items()}
    return out


def targets(summary: dict[str, dict[str, float]], set_name: str) -> dict[str, float | bool]:
    """ReelStream's targets on one portion of one set."""
    ours, robust, bola = summary[DEFAULT], summary["RobustMPC"], summary["BOLA"]
    ratio = ours["qoe_lin"] / robust["qoe_lin"] if robust["qoe_lin"] > 0 else float("inf")
    out: dict[str, float | bool] = {
        "qoe_lin_vs_robustmpc_ratio": ratio,
        "qoe_lin_vs_robustmpc_met": ratio >= 1.05,
        "rebuffer_not_above_bola_met": ours["rebuffer_pct"] <= bola["rebuffer_pct"],
    }
    if set_name == "hsdpa":
        out["rebuffer_below_0_5pct_met"] = ours["rebuffer_pct"] < 0.5
    return out


def odds(per_trace: dict[str, list[SessionMetrics]], names: list[str], algo: str,
         portion: str) -> TargetOdds:
    """How often a resampled set of the portion's recordings meets each target (bootstrap over
    recordings; every start of every file of a drawn recording comes with it)."""
    def pooled(name: str) -> dict[str, TraceTotals]:
        return totals_by_recording(totals_by_trace(per_trace[name]), recording_of)

    recordings = list(dict.fromkeys(recording_of(n) for n in split(names)[portion]))
    return target_odds(pooled(algo), pooled("RobustMPC"), pooled("BOLA"), recordings)


def odds_figures(o: TargetOdds) -> dict[str, float]:
    return {"bootstrap_qoe_lin_vs_robustmpc_share": o.qoe_ratio_met,
            "bootstrap_rebuffer_not_above_bola_share": o.rebuffer_met,
            "bootstrap_both_share": o.both_met,
            "bootstrap_qoe_lin_ratio_p5": o.qoe_ratio_low,
            "bootstrap_qoe_lin_ratio_p95": o.qoe_ratio_high}


def odds_line(o: TargetOdds) -> str:
    return (f"QoE>=1.05x in {100 * o.qoe_ratio_met:3.0f} %, rebuf<=BOLA in "
            f"{100 * o.rebuffer_met:3.0f} %, both in {100 * o.both_met:3.0f} % of resampled sets "
            f"(QoE x 90 % interval {o.qoe_ratio_low:.3f}-{o.qoe_ratio_high:.3f})")


COLUMNS = [("qoe_lin", "QoE_lin", "{:8.3f}"), ("qoe_log", "QoE_log", "{:8.3f}"),
           ("qoe_hd", "QoE_hd", "{:8.3f}"), ("rebuffer_pct", "rebuf%", "{:7.3f}"),
           ("avg_bitrate_kbps", "kbps", "{:6.0f}"), ("switches", "switch", "{:6.1f}"),
           ("smoothness_mbps", "smooth", "{:6.3f}"), ("startup_s", "start_s", "{:7.2f}")]


def table(title: str, summary: dict[str, dict[str, float]]) -> str:
    """A fixed-width table, one row per algorithm."""
    head = f"{'algorithm':15}" + "".join(f" {label:>{len(fmt.format(0))}}"
                                         for _, label, fmt in COLUMNS)
    rows = [title, head, "-" * len(head)]
    for algo, s in summary.items():
        rows.append(f"{algo:15}" + "".join(" " + fmt.format(s[key]) for key, _, fmt in COLUMNS))
    return "\n".join(rows)


# The plot: mean QoE, rebuffer ratio, bitrate and smoothness per algorithm.
# Each bar is labelled with its value: HSDPA's rebuffer ratios differ in the third decimal.
PLOT_METRICS = (("qoe_lin", "mean QoE_lin per chunk", "{:.3f}"),
                ("rebuffer_pct", "rebuffer ratio (%)", "{:.3f}"),
                ("avg_bitrate_kbps", "mean bitrate (kbit/s)", "{:.0f}"),
                ("smoothness_mbps", "mean |bitrate change| per chunk (Mbit/s)", "{:.3f}"))


def plot(results: dict[str, dict[str, dict[str, dict[str, float]]]], path: Path) -> None:
    """Bar charts of PLOT_METRICS per algorithm, one column per set (whole set)."""
    import matplotlib
    matplotlib.use("Agg")  # no display on CI or the bench machine
    import matplotlib.pyplot as plt

    sets = list(results)
    fig, axes = plt.subplots(len(PLOT_METRICS), len(sets), figsize=(6 * len(sets), 13),
                             squeeze=False)
    for col, set_name in enumerate(sets):
        summary = results[set_name]["all"]
        names = list(summary)
        colors = ["tab:red" if n == DEFAULT else "tab:blue" for n in names]
        for row, (key, label, fmt) in enumerate(PLOT_METRICS):
            ax = axes[row][col]
            bars = ax.bar(names, [summary[n][key] for n in names], color=colors)
            ax.bar_label(bars, labels=[fmt.format(summary[n][key]) for n in names], fontsize=7)
            ax.margins(y=0.12)
            ax.set_title(f"{set_name.upper()} ({int(summary[names[0]]['sessions'])} traces): {label}",
                         fontsize=10)
            ax.tick_params(axis="x", rotation=35, labelsize=8)
            ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def flat_json(results: dict[str, dict[str, dict[str, dict[str, float]]]],
              checks: dict[str, dict[str, dict[str, float | bool]]],
              extra: dict[str, object]) -> dict[str, object]:
    """Every figure as ``<set>_<portion>_<algo>_<metric>``, every target as ``..._met``."""
    out: dict[str, object] = dict(extra)
    for set_name, portions in results.items():
        for portion, summary in portions.items():
            for algo, figures in summary.items():
                for key, value in figures.items():
                    out[f"{set_name}_{portion}_{algo}_{key}"] = round(value, 5)
    for set_name, portions in checks.items():
        for portion, figures in portions.items():
            for key, value in figures.items():
                out[f"{set_name}_{portion}_{key}"] = value if isinstance(value, bool) \
                    else round(value, 5)
    out["all_targets_met"] = all(v for k, v in out.items() if k.endswith("_met")
                                 and k != "all_targets_met")
    return out


def bench(workers: int, start_seed: int | None = None) -> None:
    """Evaluate everything, print tables, plot, and end with the JSON line."""
    config = SimConfig(start_seed=start_seed)
    started = time.perf_counter()
    root = data_dir()
    video = load_video(root)
    results: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    checks: dict[str, dict[str, dict[str, float | bool]]] = {}
    for set_name in SETS:
        traces = load_traces(root / "traces" / set_name)
        per_trace = evaluate(algorithms(), video, traces, workers, config)
        results[set_name] = by_portion(per_trace, [t.name for t in traces])
        names = [t.name for t in traces]
        checks[set_name] = {p: {**targets(results[set_name][p], set_name),
                                **odds_figures(odds(per_trace, names, DEFAULT, p))}
                            for p in ("holdout", "all")}
        for portion in ("all", "tune", "holdout"):
            print(table(f"\n== {set_name.upper()} / {portion} ({len(split(traces)[portion])} "
                        "traces; QoE = mean per chunk, chunk 2 on)", results[set_name][portion]))
        for portion, figures in checks[set_name].items():
            print(f"targets {set_name}/{portion}: " + ", ".join(
                f"{k}={v if isinstance(v, bool) else round(v, 3)}" for k, v in figures.items()
                if not k.startswith("bootstrap")))
            recordings = len({recording_of(n) for n in split(names)[portion]})
            print(f"  how firm (bootstrap over the {recordings} recordings): "
                  + odds_line(odds(per_trace, names, DEFAULT, portion)))
    png = OUT / "abr.png"
    plot(results, png)
    print(f"\nplot: {png}")
    elapsed = time.perf_counter() - started
    extra = {"tuning_split": SPLIT, "tuned_on": "tune half of hsdpa and fcc",
             "targets_checked_on": "holdout (odd half) and all",
             "simulator": "Pensieve fixed_env model, " + (
                 "traces start at index 0" if start_seed is None
                 else f"traces start at a random index (seed {start_seed})"),
             "plot": str(png), "workers": workers, "elapsed_s": round(elapsed, 1)}
    print(json.dumps(flat_json(results, checks, extra), sort_keys=False))


# --- tuning (even half only) -------------------------------------------------------

# Earlier rounds (see reelstream/player/abr/reelstream.py) settled history=8,
# smooth_penalty=2, below_floor_share=0.5, fill_weight=0.2, hold_weight=2, error_window=10
# with error_quantile=0.5, collapse_kbps=700, collapse_share=1.25, capped_from_rung=2;
# round 3 the step-up rule (shift_samples=2, shift_factor=2), end_margin_s=4 and
# collapse_trend=0.6. Round 4 (this grid) priced a collapse to 200 kbit/s into every plan
# (scenario_weight, scenario_share): no setting met both targets on the tuning half (the
# only ones at BOLA's HSDPA rebuffer ratio, 0.03 and 0.05 at 200 kbit/s and 0.03 with share
# 0.25, fell to x0.998, x0.975 and x1.041 of RobustMPC on FCC; the nearest miss, 0.02 with
# share 0.25, stalled 2.7x BOLA's time on HSDPA at x1.054 on FCC), so the default keeps it
# off (see --pareto).
GRID: dict[str, Sequence[object]] = {
    "scenario_weight": (0.0, 0.003, 0.01, 0.02, 0.03, 0.05),
    "scenario_share": (None, 0.25, 0.35),
}


def tune(workers: int, offsets: int = 0) -> None:
    """Grid-search ReelStreamTuning on the tuning half; prints one line per setting."""
    root = data_dir()
    video = load_video(root)
    halves = {s: split(load_traces(root / "traces" / s))["tune"] for s in SETS}
    base = {s: {n: summarize(ms) for n, ms in evaluate_starts(
        [Bola(), RobustMpc()], video, halves[s], workers, offsets).items()} for s in SETS}
    print(f"tune half, {starts_label(offsets)}; reference:", json.dumps(base))
    keys = list(GRID)
    for values in itertools.product(*(GRID[k] for k in keys)):
        tuning = replace(ReelStreamTuning(), **dict(zip(keys, values)))  # type: ignore[arg-type]
        line = [f"{k}={v}" for k, v in zip(keys, values)]
        for s in SETS:
            ours = summarize(evaluate_starts([ReelStreamMpc(tuning)], video, halves[s],
                                             workers, offsets)[DEFAULT])
            ratio = ours["qoe_lin"] / base[s]["RobustMPC"]["qoe_lin"]
            line.append(f"{s}: x{ratio:.3f} rebuf {ours['rebuffer_pct']:.3f}% "
                        f"(bola {base[s]['BOLA']['rebuffer_pct']:.3f}%)")
        print(" | ".join(line), flush=True)


# --- the trade-off the HSDPA rebuffer target asks for --------------------------------

# Knobs that buy stall time with QoE, each off in the default: end-of-title insurance
# (tail_kbps over the last tail_chunks chunks, round 3) and the collapse scenario (round 4:
# the expected stall of a fall to 200 kbit/s, or to a quarter of the session's lowest
# sample if higher, priced into the first chunk of every plan). Round 5 added the scenario
# priced on jittery links only (scenario_volatility: the one setting that met both targets
# on the tuning half at the protocol's starts), and the two that reach BOLA's HSDPA stall
# time with every trace also started at 3 random indexes (--offsets 3).
PARETO: tuple[tuple[str, dict[str, float]], ...] = (
    ("default", {}),
    ("tail 400", {"tail_kbps": 400.0}),
    ("tail 300", {"tail_kbps": 300.0}),
    ("scenario 0.02", {"scenario_weight": 0.02}),
    ("scenario 0.03", {"scenario_weight": 0.03}),
    ("scenario 0.03 share 0.25", {"scenario_weight": 0.03, "scenario_share": 0.25}),
    ("scenario 0.03 share 0.25 jitter 0.08", {"scenario_weight": 0.03, "scenario_share": 0.25,
                                             "scenario_volatility": 0.08}),
    ("scenario 0.05 target 45", {"scenario_weight": 0.05, "target_s": 45.0}),
    ("scenario 0.15", {"scenario_weight": 0.15}),
)


def pareto(workers: int, offsets: int = 0) -> None:
    """ReelStreamMPC with each setting of PARETO, against RobustMPC's QoE and BOLA's
    rebuffer ratio on every portion of both sets; one table row per setting, then one
    JSON line (a setting meets the targets of a portion when both hold there)."""
    root = data_dir()
    video = load_video(root)
    out: dict[str, object] = {"settings": {label: knobs for label, knobs in PARETO},
                              "chosen_on": "tune (even half) only; held-out and all are reported",
                              "starts": starts_label(offsets)}
    print(f"sessions: {starts_label(offsets)}")
    print(f"{'set':6} {'setting':38} " + " ".join(f"{p + ' QoE x':>14} {p + ' rebuf% (BOLA)':>24}"
                                                  for p in PORTIONS))
    for set_name in SETS:
        traces = load_traces(root / "traces" / set_name)
        names = [t.name for t in traces]
        variants = [ReelStreamMpc(replace(ReelStreamTuning(), **knobs)) for _, knobs in PARETO]  # type: ignore[arg-type]
        for variant, (label, _) in zip(variants, PARETO, strict=True):
            variant.name = f"{DEFAULT}@{label}"
        per_trace = evaluate_starts([Bola(), RobustMpc(), *variants], video, traces, workers,
                                    offsets)
        portions = by_portion(per_trace, names)
        for variant, (label, _) in zip(variants, PARETO, strict=True):
            cells = []
            key = label.replace(" ", "_")
            for portion in PORTIONS:
                s = portions[portion]
                ratio = s[variant.name]["qoe_lin"] / s["RobustMPC"]["qoe_lin"]
                rebuf, bola = s[variant.name]["rebuffer_pct"], s["BOLA"]["rebuffer_pct"]
                cells.append(f"{ratio:14.3f} {rebuf:13.3f} ({bola:.3f})")
                out[f"{set_name}_{portion}_{key}_qoe_lin_vs_robustmpc_ratio"] = round(ratio, 4)
                out[f"{set_name}_{portion}_{key}_rebuffer_pct"] = round(rebuf, 4)
                out[f"{set_name}_{portion}_BOLA_rebuffer_pct"] = round(bola, 4)
                out[f"{set_name}_{portion}_{key}_both_targets_met"] = ratio >= 1.05 and rebuf <= bola
            print(f"{set_name:6} {label:38} " + " ".join(cells), flush=True)
    print(json.dumps(out))


# --- the stochastic-DP controller (round 5) ------------------------------------------

def _throughputs(job: Job) -> list[list[float]]:
    algorithm, video, traces, config = job
    return [[c.size_bytes * 8 / 1000 / c.download_s for c in simulate(t, video, algorithm, config).chunks]
            for t in traces]


def fit_link_model(video: Video, workers: int, starts: int = 8) -> LinkModel:
    """The link model, from the tuning halves only: the throughput samples of ReelStreamMPC,
    BOLA and RobustMPC sessions, every tuning trace played from its start and from
    ``starts - 1`` seeded random indexes."""
    root = data_dir()
    traces = [t for s in SETS for t in split(load_traces(root / "traces" / s))["tune"]]
    jobs = [(algo, video, batch, SimConfig(start_seed=seed))
            for algo in (ReelStreamMpc(), Bola(), RobustMpc())
            for seed in (None, *range(1, starts)) for batch in _batches(traces, 12)]
    with Pool(max(workers, 1)) as pool:
        histories = [h for part in pool.map(_throughputs, jobs, chunksize=1) for h in part]
    return LinkModel.fit(histories)


def sdp(workers: int, offsets: int, mu: tuple[float, float] = (150.0, 50.0)) -> None:
    """SdpAbr (model fitted on the tuning halves; stall price ``mu`` = (cautious, bold))
    against the targets, on every portion, at the protocol's starts and with ``offsets``
    seeded random starts pooled in."""
    video = load_video(data_dir())
    started = time.perf_counter()
    model = fit_link_model(video, workers)
    samples = sum(sum(sum(row) for row in plane) for plane in model.counts)
    print(f"link model: {samples} samples from the tuning halves ({time.perf_counter() - started:.0f} s)")
    out: dict[str, object] = {"model_samples": samples, "fitted_on": "tune (even half) of hsdpa and fcc",
                              "sdp_cautious_mu": mu[0], "sdp_bold_mu": mu[1]}
    ours = SdpAbr(model, cautious_mu=mu[0], bold_mu=mu[1])
    firmness: list[str] = []
    print(f"{'starts':8} {'set':6} {'algorithm':14} " + " ".join(
        f"{p + ' QoE x':>14} {p + ' rebuf% (BOLA)':>24}" for p in PORTIONS))
    for label, extra in (("protocol", 0), ("offsets", offsets)):
        for set_name in SETS:
            traces = load_traces(data_dir() / "traces" / set_name)
            per_trace = evaluate_starts([Bola(), RobustMpc(), ReelStreamMpc(), ours], video,
                                        traces, workers, extra)
            names = [t.name for t in traces]
            portions = by_portion(per_trace, names)
            for algo in (DEFAULT, ours.name):
                cells = []
                for portion in PORTIONS:
                    firm = odds(per_trace, names, algo, portion)
                    for key, value in odds_figures(firm).items():
                        out[f"{label}_{set_name}_{portion}_{algo}_{key}"] = round(value, 4)
                    firmness.append(f"{label:8} {set_name:6} {algo:14} {portion:8} {odds_line(firm)}")
                    s = portions[portion]
                    ratio = s[algo]["qoe_lin"] / s["RobustMPC"]["qoe_lin"]
                    rebuf, bola = s[algo]["rebuffer_pct"], s["BOLA"]["rebuffer_pct"]
                    cells.append(f"{ratio:14.3f} {rebuf:13.3f} ({bola:.3f})")
                    key = f"{label}_{set_name}_{portion}_{algo}"
                    out[f"{key}_qoe_lin_vs_robustmpc_ratio"] = round(ratio, 4)
                    out[f"{key}_rebuffer_pct"] = round(rebuf, 4)
                    out[f"{label}_{set_name}_{portion}_BOLA_rebuffer_pct"] = round(bola, 4)
                    if portion != "tune":
                        out[f"{key}_qoe_lin_vs_robustmpc_met"] = ratio >= 1.05
                        out[f"{key}_rebuffer_not_above_bola_met"] = rebuf <= bola
                print(f"{label:8} {set_name:6} {algo:14} " + " ".join(cells), flush=True)
    print("\nHow firm each verdict is: the share of 4000 resampled sets (recordings drawn with "
          "replacement, as many as the portion has) that meet each target")
    print("\n".join(firmness))
    out["elapsed_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(out))


# --- the yardstick: BOLA's buffer target ------------------------------------------

# dash.js's BolaRule switches to the top rung at max(stableBufferTime, 10 s + 2 s per rung):
# 22 s for this ladder at its default stableBufferTime of 12 s. The bench's BOLA uses the
# paper's Q_max, the simulator's 60-s buffer (README, "The algorithms").
DASHJS_BOLA_TARGET_S = max(12.0, 10.0 + 2.0 * 6)


def bola_targets(workers: int, targets_s: Sequence[float], offsets: int = 0) -> None:
    """The HSDPA rebuffer target's yardstick at other BOLA buffer targets: each BOLA's QoE
    and rebuffer ratio beside the default's, per set and portion (nothing is tuned)."""
    root = data_dir()
    video = load_video(root)
    bolas = [Bola(buffer_target_s=t) for t in targets_s]
    for bola, t in zip(bolas, targets_s):
        bola.name = f"BOLA {t:g} s"
    figures: dict[str, float | bool] = {}
    print(f"BOLA at buffer targets {', '.join(f'{t:g}' for t in targets_s)} s (dash.js's default: "
          f"{DASHJS_BOLA_TARGET_S:g} s); {starts_label(offsets)}")
    for set_name in SETS:
        traces = load_traces(root / "traces" / set_name)
        per_trace = evaluate_starts([RobustMpc(), ReelStreamMpc(), *bolas], video, traces, workers, offsets)
        for portion, summary in by_portion(per_trace, [t.name for t in traces]).items():
            robust, ours = summary["RobustMPC"], summary[DEFAULT]
            print(f"\n== {set_name.upper()} / {portion}: {DEFAULT} x{ours['qoe_lin'] / robust['qoe_lin']:.3f} "
                  f"RobustMPC, rebuffer {ours['rebuffer_pct']:.3f} %")
            print(f"{'algorithm':<14}{'QoE x RobustMPC':>17}{'rebuffer %':>12}  {DEFAULT} at or under it")
            for bola in bolas:
                b = summary[bola.name]
                meets = ours["rebuffer_pct"] <= b["rebuffer_pct"]
                print(f"{bola.name:<14}{b['qoe_lin'] / robust['qoe_lin']:>17.3f}{b['rebuffer_pct']:>12.3f}  {meets}")
                key = f"{set_name}_{portion}_bola_{bola.buffer_target_s:g}s"
                figures[f"{key}_qoe_x_robustmpc"] = round(b["qoe_lin"] / robust["qoe_lin"], 4)
                figures[f"{key}_rebuffer_pct"] = round(b["rebuffer_pct"], 4)
                figures[f"{key}_default_rebuffer_at_or_under_met"] = meets
            figures[f"{set_name}_{portion}_default_rebuffer_pct"] = round(ours["rebuffer_pct"], 4)
    print(json.dumps(figures))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tune", action="store_true", help="grid-search on the tuning half")
    parser.add_argument("--pareto", action="store_true",
                        help="QoE / rebuffer trade-off of the stall-buying knobs (off by default)")
    parser.add_argument("--sdp", action="store_true",
                        help="fit the link model on the tuning halves and report the stochastic-DP "
                             "controller (research), at the protocol's starts and with --offsets")
    parser.add_argument("--sdp-mu", default="150,50", metavar="CAUTIOUS,BOLD",
                        help="with --sdp: the stall prices (per second) on jittery / steady links")
    parser.add_argument("--offsets", type=int, default=0,
                        help="with --tune, --pareto or --bola-targets: also play every trace from this many "
                             "seeded random indexes and pool the sessions")
    parser.add_argument("--workers", type=int, default=min(os.cpu_count() or 1, 2))
    parser.add_argument("--start-seed", type=int, default=None,
                        help="start every trace at a random index drawn with this seed (a "
                             "robustness check; the Pensieve test protocol starts at 0)")
    parser.add_argument("--bola-targets", metavar="S,S,...", default=None,
                        help="the yardstick's sensitivity: BOLA at these buffer targets (seconds) "
                             f"beside the default, e.g. 60,40,30,{DASHJS_BOLA_TARGET_S:g} (dash.js's)")
    args = parser.parse_args(argv)
    if args.bola_targets:
        try:
            seconds = [float(x) for x in args.bola_targets.split(",")]
        except ValueError:
            parser.error(f"--bola-targets wants seconds separated by commas (e.g. 60,22), not {args.bola_targets!r}")
        if any(t <= RESERVOIR_S for t in seconds):
            parser.error(f"--bola-targets: every target must exceed BOLA's {RESERVOIR_S:g}-s reservoir")
        bola_targets(args.workers, seconds, args.offsets)
    elif args.tune:
        tune(args.workers, args.offsets)
    elif args.pareto:
        pareto(args.workers, args.offsets)
    elif args.sdp:
        try:
            cautious, bold = (float(x) for x in args.sdp_mu.split(","))
        except ValueError:
            parser.error(f"--sdp-mu wants two numbers, CAUTIOUS,BOLD (e.g. 150,50), not {args.sdp_mu!r}")
        sdp(args.workers, args.offsets or 3, (cautious, bold))
    else:
        bench(args.workers, args.start_seed)


if __name__ == "__main__":
    main()
