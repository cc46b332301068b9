"""Choosing a title's ladder at planning: the configured fixed ladder, or a per-title one.

Per title (``ladder_mode = "per_title"``): the complexity analysis measures the master
(``media/ladder/analyze.py``), the hull picks the H.264 rungs (``media/ladder/hull.py``)
between the fixed ladder's floor (its lowest rung: 240p, 400 kbit/s by default) and its
ceiling (its highest H.264 rate kept for this master), each with the CRF its quality needs
under its cap. Rungs outside the analysis (HEVC HDR) stay as the fixed ladder has them.
Both the points and the decision are published before the plan, so the ladder a title got
is auditable, and replaying the analysis through ``choose_rungs`` gives it again.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from reelstream.events.model import Event, new_event
from reelstream.ingest.plan import analysis_data, ladder_data, per_title_rungs
from reelstream.media.ladder.analyze import analyze
from reelstream.media.ladder.hull import LadderPolicy, choose_rungs
from reelstream.media.probe import VideoInfo
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
    analysis = analyze(master, video.frame_rate, video.frame_count, (video.width, video.height),
                       [r.height for r in fixed if r.encoder_group == ANALYSED_GROUP],
                       workers=workers or min(4, os.cpu_count() or 1), ceiling_kbps=policy.ceiling_kbps)
    analyzed = new_event("TitleComplexityAnalyzed",
                         analysis_data(title_id, master_key, analysis, int((time.monotonic() - started) * 1000)),
                         producer=producer, caused_by=caused_by)
    chosen = choose_rungs(analysis.points, policy)
    rungs, crfs = per_title_rungs(chosen)
    others = [r for r in fixed if r.encoder_group != ANALYSED_GROUP]
    decided = new_event("TitleLadderChosen", ladder_data(title_id, policy, analysis.points, chosen, others,
                                                         analyzed.header.event_id),
                        producer=producer, caused_by=analyzed)
    step(f"per-title ladder: {', '.join(r.rendition_id for r in rungs)}")
    return LadderDecision(rungs + others, crfs, [analyzed, decided])
