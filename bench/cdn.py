"""Delivery at internet scale, on paper: two cache tiers (ISP appliances, CDN PoPs) in
front of the origin, simulated session by session.

    python bench/cdn.py [--sessions 3000000] [--seed 7]

Assumptions (stated, each a parameter below):
- Catalog of 50,000 titles; demand is Zipf-like with exponent 0.9 over popularity rank
  (VOD studies measure 0.6-1.0); title sizes log-normal around 4 GB (every rendition
  a PoP ends up holding for a title: an SD-to-HD ladder, audio and subtitles).
- 12 PoPs, 6 ISPs per PoP (72 ISPs); 2/3 of ISPs host an appliance. Viewers are spread
  over ISPs by a Zipf(0.5) weight (a few big ISPs).
- A session fetches the title's bytes times a watched fraction (uniform 0.2-1.0). Caches
  hold whole titles, evicted least-recently-used (nginx proxy_cache evicts LRU too).
- The appliance holds only titles on the popularity list: the top 3,000 titles by starts
  in the warm-up window (what ``processors/popularity`` computes from PlaybackStarted);
  other titles bypass it and go to the PoP.
- The first 20% of sessions warm the caches and are not counted.

Prints per-tier byte hit ratios, origin egress, the appliances' share and the hit
ratio at the PoP tier for the top 10,000 titles; writes ``bench/out/cdn_hit_ratio.png``
(PoP hit ratio against PoP cache size); ends with ONE JSON line of every figure.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent / "out"
TB = 1e12
GB = 1e9


@dataclass(frozen=True)
class Scenario:
    titles: int = 50_000
    zipf_s: float = 0.9
    mean_title_gb: float = 4.0
    pops: int = 12
    isps_per_pop: int = 6
    appliance_share: float = 2 / 3
    pop_cache_tb: float = 100.0
    appliance_cache_tb: float = 20.0
    popular_list: int = 3_000
    warmup: float = 0.2


class Lru:
    """Whole-title LRU of a capacity in bytes."""

    def __init__(self, capacity: float) -> None:
        self.capacity, self.used, self.items = capacity, 0.0, OrderedDict[int, float]()

    def get_or_fill(self, title: int, size: float) -> bool:
        if title in self.items:
            self.items.move_to_end(title)
            return True
        if size <= self.capacity:
            self.items[title] = size
            self.used += size
            while self.used > self.capacity:
                _, evicted = self.items.popitem(last=False)
                self.used -= evicted
        return False


def simulate(sc: Scenario, sessions: int, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, sc.titles + 1) ** sc.zipf_s
    titles = rng.choice(sc.titles, size=sessions, p=weights / weights.sum())  # 0 = most popular
    sizes = rng.lognormal(np.log(sc.mean_title_gb * GB) - 0.125, 0.5, sc.titles)
    isps = sc.pops * sc.isps_per_pop
    isp_w = 1.0 / np.arange(1, isps + 1) ** 0.5
    isp_of = rng.choice(isps, size=sessions, p=isp_w / isp_w.sum())
    watched = rng.uniform(0.2, 1.0, sessions)
    has_appliance = rng.random(isps) < sc.appliance_share
    pops = [Lru(sc.pop_cache_tb * TB) for _ in range(sc.pops)]
    appliances = [Lru(sc.appliance_cache_tb * TB) for _ in range(isps)]
    warm = int(sessions * sc.warmup)
    counts = np.bincount(titles[:warm], minlength=sc.titles)
    popular = set(np.argsort(-counts, kind="stable")[:sc.popular_list].tolist())
    served = {"appliance": 0.0, "pop": 0.0, "origin": 0.0}
    top_pop_hit = top_pop_all = pop_req = pop_hit = app_req = app_hit = 0.0
    for i in range(sessions):
        t, isp = int(titles[i]), int(isp_of[i])
        size = float(sizes[t])
        nbytes = size * float(watched[i])
        counted = i >= warm
        if has_appliance[isp] and t in popular:
            hit = appliances[isp].get_or_fill(t, size)
            if counted:
                app_req += nbytes
                app_hit += nbytes * hit
            if hit:
                served["appliance"] += nbytes * counted
                continue
        hit = pops[isp // sc.isps_per_pop].get_or_fill(t, size)
        if counted:
            pop_req += nbytes
            pop_hit += nbytes * hit
            served["pop" if hit else "origin"] += nbytes
            if t < 10_000:
                top_pop_all += nbytes
                top_pop_hit += nbytes * hit
    total = sum(served.values())
    return {"appliance_hit_ratio": app_hit / app_req if app_req else 0.0, "pop_hit_ratio": pop_hit / pop_req,
            "top10k_pop_hit_ratio": top_pop_hit / top_pop_all, "appliance_share": served["appliance"] / total,
            "origin_egress_tb": served["origin"] / TB, "origin_share": served["origin"] / total,
            "delivered_tb": total / TB}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=5_000_000)
    parser.add_argument("--sweep-sessions", type=int, default=3_000_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    started = time.monotonic()
    sc = Scenario()
    main_run = simulate(sc, args.sessions, args.seed)
    print(f"Scenario: {sc.titles:,} titles, Zipf {sc.zipf_s}, {sc.pops} PoPs x {sc.isps_per_pop} ISPs, "
          f"{args.sessions:,} sessions, PoP {sc.pop_cache_tb:g} TB, appliance {sc.appliance_cache_tb:g} TB "
          f"(top {sc.popular_list:,} titles)\n")
    print(f"{'figure':<38}{'value':>12}")
    for name, fmt in (("pop_hit_ratio", "{:.1%}"), ("top10k_pop_hit_ratio", "{:.1%}"),
                      ("appliance_hit_ratio", "{:.1%}"), ("appliance_share", "{:.1%}"),
                      ("origin_share", "{:.2%}"), ("origin_egress_tb", "{:,.0f} TB"), ("delivered_tb", "{:,.0f} TB")):
        print(f"{name:<38}{fmt.format(main_run[name]):>12}")
    sweep_tb = [5, 10, 20, 40, 80, 160]
    sweep = []
    print(f"\n{'PoP cache':>10}{'PoP hit':>10}{'top-10k hit':>13}{'origin share':>14}")
    for tb in sweep_tb:
        r = simulate(Scenario(pop_cache_tb=tb), args.sweep_sessions, args.seed)
        sweep.append(r)
        print(f"{tb:>8} TB{r['pop_hit_ratio']:>10.1%}{r['top10k_pop_hit_ratio']:>13.1%}{r['origin_share']:>14.2%}")
    OUT.mkdir(exist_ok=True)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(sweep_tb, [r["pop_hit_ratio"] for r in sweep], "o-", label="PoP tier, all titles")
    ax.plot(sweep_tb, [r["top10k_pop_hit_ratio"] for r in sweep], "s-", label="PoP tier, top 10,000 titles")
    ax.axhline(0.9, color="grey", linestyle=":", label="90%")
    ax.set_xscale("log")
    ax.set_xlabel("PoP cache size (TB)")
    ax.set_ylabel("byte hit ratio")
    ax.set_title(f"{sc.titles:,} titles, Zipf {sc.zipf_s}, {args.sweep_sessions:,} sessions")
    ax.legend()
    ax.grid(True, alpha=0.3)
    plot = OUT / "cdn_hit_ratio.png"
    fig.savefig(plot, dpi=120, bbox_inches="tight")
    print(f"\nplot: {plot}")
    summary = {**{k: round(v, 4) for k, v in main_run.items()}, "sessions": args.sessions, "titles": sc.titles,
               "pop_cache_tb": sc.pop_cache_tb, "appliance_cache_tb": sc.appliance_cache_tb,
               "sweep": {f"{tb}tb": round(r["pop_hit_ratio"], 4) for tb, r in zip(sweep_tb, sweep)},
               "sweep_top10k": {f"{tb}tb": round(r["top10k_pop_hit_ratio"], 4) for tb, r in zip(sweep_tb, sweep)},
               "top10k_above_90pct_met": main_run["top10k_pop_hit_ratio"] > 0.9,
               "wall_s": round(time.monotonic() - started, 1), "plot": str(plot)}
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
