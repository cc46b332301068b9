"""Choosing a title's ladder at planning: the configured fixed ladder, or a per-title one.

Per title (``ladder_mode = "per_title"``): for each encoder group the analysis can measure,
the complexity analysis (``media/ladder/analyze.py``) makes trial encodes of sampled chunks
exactly as that group's jobs encode, and the hull (``media/ladder/hull.py``) picks its
rungs between the group's fixed floor (its lowest rung) and ceiling (its highest rate kept
for this master), each with the CRF its quality needs under its cap:

- ``h264-sdr``: every master; from an HDR master these rungs are tone-mapped, and their
  trials are scored against the master's frames tone-mapped by the same LUT;
- ``hevc-hdr``: HDR masters; HEVC Main10 PQ trials (x265) scored in 10 bits against the PQ
  master, fewer and shorter (``HDR_TRIAL_CRFS``, two samples), the group keeping as many
  rungs as the fixed ladder gives it (2 by default) and the SDR group asking for one fewer
  per HDR rung, so the whole ladder stays within 8..12 rungs.

A fixed rung the per-title ladder would not clearly beat at its own bitrate is kept as a
rung (``hull._anchored``), at the CRF the fixed ladder's calibration gives it. Both the points
and the decision are published before the plan, one pair per group, so the ladder a title
got is auditable, and replaying each analysis through ``choose_rungs`` gives it again (all
but the CRFs of the top rung and the fixed-rung anchors, which calibrations set).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

from reelstream.cpus import usable_cores
from reelstream.events.model import Event, new_event
from reelstream.ingest.plan import SSIM_METHOD, analysis_data, ladder_data, per_title_rungs
from reelstream.media.ladder.analyze import HDR_TRIAL_CRFS, Analysis, Trials, analyze
from reelstream.media.ladder.hull import ChosenRung, FixedRung, LadderPolicy, choose_rungs
from reelstream.media.probe import VideoInfo
from reelstream.media.transcode.calibrate import calibrate
from reelstream.media.transcode.commands import ChunkEncode, RungEncode
from reelstream.media.transcode.grid import chunk_grid
from reelstream.media.transcode.ladder import Rung
from reelstream.media.transcode.tonemap import peak_of, write_cube

LADDER_MODES = ("fixed", "per_title")
SDR_GROUP, HDR_GROUP = "h264-sdr", "hevc-hdr"


@dataclass
class LadderDecision:
    rungs: list[Rung]
    crfs: dict[str, float] = field(default_factory=dict)  # rendition_id -> CRF chosen per title
    events: list[Event] = field(default_factory=list)  # per group: TitleComplexityAnalyzed, TitleLadderChosen

    @property
    def last(self) -> Event | None:
        return self.events[-1] if self.events else None


def policy_for(fixed: Sequence[Rung], rungs: int | None = None, group: str = SDR_GROUP) -> LadderPolicy | None:
    """The per-title constraints of one encoder group from the fixed ladder kept for this
    master: floor = its lowest rung, ceiling = its highest rate, and its rungs, which the
    per-title ladder must be at least as good as at their bitrates. The SDR group asks for 10
    rungs (8..12), one fewer per HDR rung when the master also has an HDR group, so the whole
    ladder stays within 8..12; the HDR group as many as the fixed ladder gives it. None when the fixed ladder has no rung of the group."""
    members = [r for r in fixed if r.encoder_group == group]
    if not members:
        return None
    low = min(members, key=lambda r: (r.height, r.bitrate_kbps))
    hdr = len([r for r in fixed if r.encoder_group == HDR_GROUP])
    if group == HDR_GROUP:
        count, least, most = rungs or len(members), 1, len(members)
    else:
        count, least, most = rungs or 10 - hdr, 8 - hdr, 12 - hdr
    return LadderPolicy(rungs=count, min_rungs=least, max_rungs=most, floor_height=low.height,
                        floor_kbps=low.bitrate_kbps, ceiling_kbps=max(r.bitrate_kbps for r in members),
                        fixed_rungs=tuple(FixedRung(r.width, r.height, r.bitrate_kbps) for r in members)).check()


def trials_for(group: str, base: ChunkEncode | None) -> Trials:
    if group == HDR_GROUP:
        return Trials("hevc", True, base, HDR_TRIAL_CRFS, spread=1, at_cuts=1)
    return Trials("h264", False, base)


def measure_and_choose(master: Path, fps: Fraction, frame_count: int, size: tuple[int, int], fixed: Sequence[Rung],
                       policy: LadderPolicy, workers: int | None = None, group: str = SDR_GROUP,
                       base: ChunkEncode | None = None,
                       cuts: Sequence[tuple[int, float]] | None = None) -> tuple[Analysis, list[ChosenRung]]:
    """One group's analysis and the rungs chosen on its hull, with two calibrations.

    The fixed-rung anchors are encoded at the CRF the fixed ladder's calibration gives them
    (they are then the fixed rungs). The top rung is capped at the ceiling, at the hull's CRF
    or, if lower, the CRF the fixed ladder's calibration gives the top resolution for the
    ceiling: the trials are uncapped and sampled, so the hull's CRF tends to leave the ceiling
    partly unspent (measured: 3.5 of 4.5 Mbit/s on the grainy bench master), and the per-title
    top rung must be at least as good as the fixed one."""
    heights = [r.height for r in fixed if r.encoder_group == group]
    trials = trials_for(group, base)
    analysis = analyze(master, fps, frame_count, size, heights, workers=workers or min(4, usable_cores()),
                       ceiling_kbps=policy.ceiling_kbps, trials=trials, cuts=cuts)
    chosen = choose_rungs(analysis.points, policy)
    top = len(chosen) - 1
    to_calibrate = {i: RungEncode(f"rung-{i}", trials.codec, c.width, c.height,
                                  c.cap_kbps if c.fixed else policy.ceiling_kbps, hdr=trials.hdr)
                    for i, c in enumerate(chosen)
                    if c.fixed or (i == top and c.height == max(p.height for p in analysis.points))}
    if to_calibrate:
        template = base or ChunkEncode(master=master, fps=fps, start_frame=0, frame_count=0, rungs=(), outputs=())
        crfs = calibrate(master, fps, chunk_grid(frame_count, fps), list(to_calibrate.values()),
                         base=replace(template, threads=1)).crfs
        for i, rung in to_calibrate.items():
            c = chosen[i]
            crf = crfs[rung.rendition_id]
            chosen[i] = replace(c, crf=crf) if c.fixed else replace(c, crf=min(c.crf, crf), cap_kbps=rung.bitrate_kbps)
    return analysis, chosen


def job_template(master: Path, video: VideoInfo, scratch: Path) -> ChunkEncode:
    """The chunk jobs' encode settings for this master (HDR metadata, the tone-map LUT)."""
    lut = write_cube(scratch, peak_of(video.master_display, video.max_cll)) if video.hdr else None
    return ChunkEncode(master=master, fps=video.frame_rate, start_frame=0, frame_count=0, rungs=(), outputs=(),
                       source_hdr=video.hdr, master_display=video.master_display, max_cll=video.max_cll,
                       tonemap_lut=lut, threads=1)


def choose_ladder(mode: str, master: Path, video: VideoInfo, fixed: Sequence[Rung], title_id: str, master_key: str,
                  *, producer: str, caused_by: Event, step: Callable[[str], None] = lambda _: None,
                  workers: int | None = None) -> LadderDecision:
    """The rungs to plan (and their per-title CRFs), with the events that record the choice."""
    analysed = [g for g in (SDR_GROUP, HDR_GROUP) if mode == "per_title" and policy_for(fixed, group=g) is not None]
    if not analysed:
        return LadderDecision(list(fixed))
    base = job_template(master, video, Path(tempfile.gettempdir()))
    decision = LadderDecision([])
    cuts: list[tuple[int, float]] | None = None
    cause = caused_by
    for group in analysed:
        policy = policy_for(fixed, group=group)
        assert policy is not None
        step(f"measuring the title's complexity for its {group} rungs (trial encodes scored with SSIM)")
        started = time.monotonic()
        analysis, chosen = measure_and_choose(master, video.frame_rate, video.frame_count,
                                              video.display_size, fixed, policy, workers, group, base, cuts)
        cuts = analysis.scene_changes
        method = scoring_method(group, video.hdr)
        analyzed = new_event("TitleComplexityAnalyzed",
                             analysis_data(title_id, master_key, analysis, int((time.monotonic() - started) * 1000),
                                           group, method),
                             producer=producer, caused_by=cause)
        rungs, crfs = per_title_rungs(chosen, group)
        others = [r for r in fixed if r.encoder_group not in analysed]
        decided = new_event("TitleLadderChosen", ladder_data(title_id, policy, analysis.points, chosen, others,
                                                             analyzed.header.event_id, group),
                            producer=producer, caused_by=analyzed)
        step(f"per-title {group} ladder: {', '.join(r.rendition_id for r in rungs)}")
        decision.rungs += rungs
        decision.crfs.update(crfs)
        decision.events += [analyzed, decided]
        cause = decided
    decision.rungs += [r for r in fixed if r.encoder_group not in analysed]
    return decision


def scoring_method(group: str, master_hdr: bool) -> str:
    if group == HDR_GROUP:
        return ("each HEVC Main10 PQ trial decoded and scaled (bicubic) to the master's resolution, compared in 10 bits "
                "with the PQ master's own frames by ffmpeg's ssim filter (SSIM of the PQ-coded signal); mean of the "
                "per-frame 'All' values (Y, U, V 4:1:1), frame-weighted over the sampled chunks")
    if master_hdr:
        return ("each tone-mapped SDR trial decoded and scaled (bicubic) to the master's resolution, compared with the "
                "master's own frames tone-mapped by the same LUT (the jobs' PQ-to-BT.709 chain) by ffmpeg's ssim "
                "filter; mean of the per-frame 'All' values (Y, U, V 4:1:1), frame-weighted over the sampled chunks")
    return SSIM_METHOD
