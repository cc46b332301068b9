"""Choosing a title's ladder at planning: the configured fixed ladder, or a per-title one.

Per title (``ladder_mode = "per_title"``): the complexity analysis measures the master
(``media/ladder/analyze.py``), the hull picks the H.264 rungs (``media/ladder/hull.py``)
between the fixed ladder's floor (its lowest rung: 240p, 400 kbit/s by default) and its
ceiling (its highest H.264 rate kept for this master), each with the CRF its quality needs
under its cap. Rungs outside the analysis (HEVC HDR) stay as the fixed ladder has them.
Both the points and the decision are published before the plan, so the ladder a title got
is auditable, and replaying the analysis through ``choose_rungs`` gives it again (all but
the top rung's CRF, which a calibration to the ceiling may lower; the event records it).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

from reelstream.events.model import Event, new_event
from reelstream.ingest.plan import analysis_data, ladder_data, per_title_rungs
from reelstream.media.ladder.analyze import Analysis, analyze
from reelstream.media.ladder.hull import ChosenRung, LadderPolicy, choose_rungs
from reelstream.media.probe import VideoInfo
from reelstream.media.transcode.calibrate import calibrate
from reelstream.media.transcode.commands import ChunkEncode, RungEncode
from reelstream.media.transcode.grid import chunk_grid
from reelstream.media.transcode.ladder import Rung

LADDER_MODES = ("fixed", "per_title")
ANALYSED_GROUP = "h264-sdr"


@dataclass
class LadderDecision:
    rungs: list[Rung]
    crfs: dict[str, float] = field(default_factory=dict)  # rendition_id -> CRF chosen per title
    events: list[Event] = field(default_factory=list)  # TitleComplexityAnalyzed, TitleLadderChosen

    @property
    def last(self) -> Event | None:
        return self.events[-1] if self.events else None


def policy_for(fixed: Sequence[Rung], rungs: int = 10) -> LadderPolicy | None:
    """The per-title constraints from the fixed ladder kept for this master: floor = its lowest
    H.264 rung, ceiling = its highest H.264 rate. None when it has no H.264 SDR rung."""
    sdr = [r for r in fixed if r.encoder_group == ANALYSED_GROUP]
    if not sdr:
        return None
    low = min(sdr, key=lambda r: (r.height, r.bitrate_kbps))
    return LadderPolicy(rungs=rungs, floor_height=low.height, floor_kbps=low.bitrate_kbps,
                        ceiling_kbps=max(r.bitrate_kbps for r in sdr)).check()


def measure_and_choose(master: Path, fps: Fraction, frame_count: int, size: tuple[int, int], fixed: Sequence[Rung],
                       policy: LadderPolicy, workers: int | None = None) -> tuple[Analysis, list[ChosenRung]]:
    """The analysis and the rungs chosen on its hull, the top one filling the ceiling.

    The top rung is capped at the ceiling, at the hull's CRF or, if lower, the CRF the
    fixed ladder's calibration gives the top resolution for the ceiling: the trials are
    uncapped and sampled, so the hull's CRF tends to leave the ceiling partly unspent
    (measured: 3.5 of 4.5 Mbit/s on the grainy bench master), and the per-title top rung
    must be at least as good as the fixed one."""
    heights = [r.height for r in fixed if r.encoder_group == ANALYSED_GROUP]
    analysis = analyze(master, fps, frame_count, size, heights, workers=workers or min(4, os.cpu_count() or 1),
                       ceiling_kbps=policy.ceiling_kbps)
    chosen = choose_rungs(analysis.points, policy)
    top = chosen[-1]
    if top.height == max(p.height for p in analysis.points):
        base = ChunkEncode(master=master, fps=fps, start_frame=0, frame_count=0, rungs=(), outputs=(), threads=1)
        rung = RungEncode("top", "h264", top.width, top.height, policy.ceiling_kbps)
        crf = calibrate(master, fps, chunk_grid(frame_count, fps), [rung], base=base).crfs["top"]
        chosen[-1] = replace(top, crf=min(top.crf, crf), cap_kbps=policy.ceiling_kbps)
    return analysis, chosen


def choose_ladder(mode: str, master: Path, video: VideoInfo, fixed: Sequence[Rung], title_id: str, master_key: str,
                  *, producer: str, caused_by: Event, step: Callable[[str], None] = lambda _: None,
                  workers: int | None = None) -> LadderDecision:
    """The rungs to plan (and their per-title CRFs), with the events that record the choice."""
    policy = policy_for(fixed)
    if mode != "per_title" or policy is None or video.hdr:
        # HDR masters keep the fixed ladder: their SDR rungs are tone-mapped, and scoring those
        # against the PQ master would need the same tone map on the reference (not built yet).
        return LadderDecision(list(fixed))
    step("measuring the title's complexity (trial encodes scored with SSIM) for a per-title ladder")
    started = time.monotonic()
    analysis, chosen = measure_and_choose(master, video.frame_rate, video.frame_count, (video.width, video.height),
                                          fixed, policy, workers)
    analyzed = new_event("TitleComplexityAnalyzed",
                         analysis_data(title_id, master_key, analysis, int((time.monotonic() - started) * 1000)),
                         producer=producer, caused_by=caused_by)
    rungs, crfs = per_title_rungs(chosen)
    others = [r for r in fixed if r.encoder_group != ANALYSED_GROUP]
    decided = new_event("TitleLadderChosen", ladder_data(title_id, policy, analysis.points, chosen, others,
                                                         analyzed.header.event_id),
                        producer=producer, caused_by=analyzed)
    step(f"per-title ladder: {', '.join(r.rendition_id for r in rungs)}")
    return LadderDecision(rungs + others, crfs, [analyzed, decided])
