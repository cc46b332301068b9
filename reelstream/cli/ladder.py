"""`reel ladder TITLE [--replay]`: the ladder a title got, from its events, and its replay."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from reelstream.cli._records import decoded, read_to_end
from reelstream.cli.core import Subcommands, add_runtime_flags, settings_from
from reelstream.events.model import Event
from reelstream.ingest.plan import per_title_rungs, points_of, policy_of
from reelstream.media.ladder.hull import choose_rungs, ssim_db
from reelstream.runtime import Runtime


def latest_decisions(catalog: Iterable[Event], title_id: str) -> list[tuple[Event, Event | None]]:
    """The title's last TitleLadderChosen per encoder group (an HDR master has two), each with
    the TitleComplexityAnalyzed it names."""
    analyzed: dict[str, Event] = {}
    chosen: dict[str, Event] = {}
    for event in catalog:
        if event.type == "TitleComplexityAnalyzed" and event["title_id"] == title_id:
            analyzed[event.event_id] = event
        elif event.type == "TitleLadderChosen" and event["title_id"] == title_id:
            chosen[event["encoder_group"]] = event
    return [(c, analyzed.get(c["analysis_event_id"] or "")) for c in chosen.values()]


def latest_decision(catalog: Iterable[Event], title_id: str) -> tuple[Event | None, Event | None]:
    """The title's last TitleLadderChosen and the TitleComplexityAnalyzed it names."""
    decisions = latest_decisions(catalog, title_id)
    return decisions[-1] if decisions else (None, None)


def replay_differences(analyzed: Mapping[str, Any], chosen: Mapping[str, Any]) -> list[str]:
    """What replaying the analysis through the hull gives differently from the recorded ladder.
    Calibrations set two kinds of CRF: the top rung's may be lower than the hull's (calibrated
    to the ceiling), and a fixed-rung anchor's is the fixed ladder's calibrated CRF."""
    group = chosen.get("encoder_group", "h264-sdr")
    replayed = choose_rungs(points_of(analyzed), policy_of(chosen))
    rungs, crfs = per_title_rungs(replayed, group)
    recorded = [r for r in chosen["rungs"]
                if r["crf"] is not None and f"{r['codec']}-{'hdr' if r['hdr'] else 'sdr'}" == group]
    if len(recorded) != len(rungs):
        return [f"{len(rungs)} rungs replayed, {len(recorded)} recorded"]
    out = []
    for i, (rung, c, r) in enumerate(zip(rungs, replayed, recorded, strict=True)):
        top = i == len(rungs) - 1
        if rung.height != r["height"] or ((c.fixed or not top) and rung.rendition_id != r["rendition_id"]):
            out.append(f"rung {i}: replayed {rung.rendition_id}, recorded {r['rendition_id']}")
        elif c.fixed != r.get("fixed_rung", False):
            out.append(f"rung {i} {r['rendition_id']}: replayed {'' if c.fixed else 'not '}as a fixed-ladder rung")
        elif c.fixed:
            continue  # its CRF is the fixed ladder's calibration's
        elif (r["crf"] > crfs[rung.rendition_id] + 1e-9) if top else abs(r["crf"] - crfs[rung.rendition_id]) > 1e-9:
            out.append(f"rung {i} {r['rendition_id']}: replayed CRF {crfs[rung.rendition_id]}, recorded {r['crf']}")
    return out


def render(chosen: Mapping[str, Any]) -> str:
    lines = [(f"{chosen['title_id']}: {chosen['mode']} ladder of {chosen.get('encoder_group', 'h264-sdr')}, "
              f"quality metric {chosen['metric'] or '-'} (* a fixed-ladder rung kept: the per-title one was not "
              f"clearly better at its bitrate)"),
             (f"  {'rendition':<22}{'size':>11}{'CRF':>7}{'cap kbit/s':>12}{'expected kbit/s':>17}"
             f"{'expected ' + (chosen['metric'] or 'score'):>15}{'dB':>7}")]
    for r in chosen["rungs"]:
        score = r["expected_score"]
        mark = "*" if r.get("fixed_rung") and r["crf"] is not None else " "
        lines.append(f" {mark}{r['rendition_id']:<22}{str(r['width']) + 'x' + str(r['height']):>11}"
                     f"{'-' if r['crf'] is None else format(r['crf'], '.2f'):>7}{r['cap_kbps']:>12}"
                     f"{'-' if r['expected_kbps'] is None else format(r['expected_kbps'], '.0f'):>17}"
                     f"{'-' if score is None else format(score, '.4f'):>15}"
                     f"{'-' if score is None else format(ssim_db(score), '.2f'):>7}")
    if chosen["hull"]:
        lines.append("  hull: " + ", ".join(f"{h['height']}p crf {h['crf']:g} {h['kbps']:.0f} kbit/s "
                                            f"{ssim_db(h['score']):.2f} dB" for h in chosen["hull"]))
    return "\n".join(lines)


def cmd_ladder(args: argparse.Namespace) -> int:
    runtime = Runtime(settings_from(args))
    catalog = list(decoded(runtime.codec, read_to_end(runtime.log, ["reel.catalog"]), "ladder"))
    decisions = latest_decisions(catalog, args.title_id)
    if not decisions:
        known = any(e.data.get("title_id") == args.title_id for e in catalog)
        print(f"reel ladder: no ladder chosen for {args.title_id!r} (fixed mode records none: REEL_LADDER_MODE)"
              if known else f"reel ladder: no title {args.title_id!r} in reel.catalog on {runtime.settings.log_url}",
              file=sys.stderr)
        return 2
    status = 0
    for chosen, analyzed in decisions:
        print(render(chosen.data))
        if not args.replay:
            continue
        if analyzed is None:
            print("reel ladder: the analysis this ladder names is not in reel.catalog", file=sys.stderr)
            status = 1
            continue
        differences = replay_differences(analyzed.data, chosen.data)
        print("replay: " + ("the same ladder" if not differences else "; ".join(differences)))
        status = status or (1 if differences else 0)
    return status


def register(sub: Subcommands) -> None:
    ladder = sub.add_parser("ladder", help="the ladder chosen for a title, from its events (--replay: choose again)")
    add_runtime_flags(ladder)
    ladder.add_argument("title_id")
    ladder.add_argument("--replay", action="store_true",
                        help="choose again from the recorded analysis and compare (exit 1 if different)")
    ladder.set_defaults(fn=cmd_ladder)
