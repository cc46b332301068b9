"""Complexity analysis: trial encodes of sampled chunks at several resolutions and CRFs,
each scored with SSIM against the source.

Samples are grid chunks (the unit the pipeline encodes), spread evenly over the title,
plus the chunks holding its strongest scene changes (a cut is where a fixed rate runs
short). Each sample is decoded once and encoded into every (resolution, CRF) trial from
one filter graph — the same command a chunk job runs (``commands.chunk_command``, x264
at the job's preset, closed GOP), uncapped so the rate is what the CRF needs.

Quality is SSIM (the static ffmpeg 8.1 has no libvmaf): each trial is decoded, scaled back
to the master's resolution (bicubic), and compared with the master's own frames by
ffmpeg's ``ssim`` filter; the score is the mean of the per-frame "All" values (Y, U, V
weighted 4:1:1), frame-weighted over the samples. Samples run in parallel, one
single-threaded ffmpeg per worker.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

from reelstream.media import tools
from reelstream.media.ladder.hull import RatePoint
from reelstream.media.probe import interlaced, video_start
from reelstream.media.transcode.chunk import encode_chunk
from reelstream.media.transcode.commands import DEINTERLACE, ChunkEncode, RungEncode, tonemap_filter
from reelstream.media.transcode.grid import Chunk, chunk_grid, first_frame_filter, seek_args
from reelstream.media.transcode.ladder import even
from reelstream.media.transcode.run import run

# Four CRFs 6 apart (each step about halves the rate): 240p at ~400 kbit/s to near-transparent 1080p.
TRIAL_CRFS = (18.0, 24.0, 30.0, 36.0)
MIN_CRF = 10.0  # the calibration's lowest CRF too: below it x264 spends bits nobody sees
SCENE_THRESHOLD = 0.3  # ffmpeg's scene score (0..1) above which a frame starts a new shot
_SCENE = re.compile(r"pts_time:([\d.]+)\s*\n\s*lavfi\.scene_score=([\d.]+)")
_ALL = re.compile(r"All:([\d.]+)")


@dataclass(frozen=True)
class Trials:
    """How one encoder group's trials are encoded and scored: its codec and dynamic range, and
    the jobs' template (``base``: an HDR master's metadata and the tone-map LUT for SDR rungs
    from it), so a trial is encoded exactly as the group's chunk jobs encode."""

    codec: str = "h264"
    hdr: bool = False
    base: ChunkEncode | None = None
    crfs: tuple[float, ...] = TRIAL_CRFS
    spread: int | None = None  # samples spread over the title (None: 2, one more per hour, up to 6)
    at_cuts: int = 2  # samples at the strongest scene changes

    @property
    def group(self) -> str:
        return f"{self.codec}-{'hdr' if self.hdr else 'sdr'}"


# HDR10 rungs (HEVC Main10, the x265 CLI on UHD frames) cost several times an H.264 trial on
# 2 cores: their trials are fewer, three CRFs on one spread sample and the strongest cut.
HDR_TRIAL_CRFS = (20.0, 26.0, 32.0)


@dataclass(frozen=True)
class Sample:
    chunk: Chunk
    reason: str  # SPREAD | SCENE_CHANGE


@dataclass
class Analysis:
    samples: list[Sample]
    points: list[RatePoint]
    scene_changes: list[tuple[int, float]] = field(default_factory=list)  # (frame, score)
    crfs: tuple[float, ...] = TRIAL_CRFS
    preset: str = "veryfast"


def scene_changes(master: Path, fps: Fraction, threshold: float = SCENE_THRESHOLD) -> list[tuple[int, float]]:
    """(frame index, scene score) of every cut, from one decode scaled to 192 px wide."""
    with tempfile.TemporaryDirectory(prefix="scenes-") as tmp:
        out = Path(tmp) / "scenes.txt"
        run([tools.ffmpeg(), "-nostdin", "-hide_banner", "-v", "error", "-threads", "1", "-i", str(master),
             "-an", "-sn", "-dn", "-filter_threads", "1",
             "-vf", f"setpts=PTS-STARTPTS,scale=192:-2,select='gt(scene\\,{threshold})',metadata=print:file={out}",
             "-f", "null", "-"], f"finding the scene changes of {master.name}")
        text = out.read_text() if out.exists() else ""
    return [(round(float(t) * fps), float(s)) for t, s in _SCENE.findall(text)]


def pick_samples(grid: Sequence[Chunk], cuts: Sequence[tuple[int, float]], spread: int = 2,
                 at_cuts: int = 2) -> list[Sample]:
    """``spread`` full chunks evenly over the title, then the chunks of the ``at_cuts``
    strongest scene changes not already sampled; in title order."""
    full = [c for c in grid if c.frame_count == grid[0].frame_count] or list(grid)
    count = min(spread, len(full))
    chosen = {full[(2 * i + 1) * len(full) // (2 * count)].index: "SPREAD" for i in range(count)}
    size = grid[0].frame_count
    for frame, _ in sorted(cuts, key=lambda c: -c[1]):
        if sum(r == "SCENE_CHANGE" for r in chosen.values()) >= at_cuts:
            break
        index = min(frame // size, len(grid) - 1)
        if grid[index].frame_count == size:
            chosen.setdefault(index, "SCENE_CHANGE")
    return [Sample(grid[i], reason) for i, reason in sorted(chosen.items())]


def trial_sizes(width: int, height: int, heights: Sequence[int]) -> list[tuple[int, int]]:
    return [(even(h * width / height), h) for h in sorted(set(heights)) if h <= height]


def ssim_of(master: Path, fps: Fraction, start_frame: int, frame_count: int, encoded: Sequence[Path],
            size: tuple[int, int], scratch: Path | None = None, *, tonemap_lut: Path | None = None,
            ten_bit: bool = False, deinterlace: bool = False) -> list[float]:
    """Mean SSIM ("All") of each encoded file against frames ``start_frame..+frame_count`` of
    the master, each scaled (bicubic) to the master's ``size``; one decode of the master.

    ``tonemap_lut``: the encodes are SDR rungs tone-mapped from an HDR master, and the
    master's frames are tone-mapped the same way (``commands.tonemap_filter``, the jobs' chain,
    at the master's size) before the comparison. ``ten_bit``: both sides compared in 10 bits (HDR
    rungs against the PQ master: SSIM of the PQ-coded signal). ``deinterlace``: the master is
    interlaced, and its frames are deinterlaced as the encodes' were (``commands.DEINTERLACE``):
    woven fields as the reference scored every trial down by the combing it no longer has."""
    width, height = size
    pix = "yuv420p10le" if ten_bit else "yuv420p"
    reference = f"{tonemap_filter(tonemap_lut, width, height)}," if tonemap_lut else ""
    deinterlaced = DEINTERLACE if deinterlace else ""
    graph = [f"[0:v:0]{deinterlaced}{first_frame_filter(start_frame, fps)},trim=end_frame={frame_count},"
             "setpts=PTS-STARTPTS,"
             f"{reference}format={pix},split={len(encoded)}" + "".join(f"[r{i}]" for i in range(len(encoded)))]
    with tempfile.TemporaryDirectory(dir=scratch, prefix="ssim-") as tmp:
        stats = [Path(tmp) / f"{i}.log" for i in range(len(encoded))]
        for i, path in enumerate(stats):
            graph.append(f"[{i + 1}:v:0]setpts=PTS-STARTPTS,scale={width}:{height}:flags=bicubic,setsar=1,"
                         f"format={pix}[d{i}];[d{i}][r{i}]ssim=stats_file={path}[o{i}]")
        argv = [tools.ffmpeg(), "-nostdin", "-hide_banner", "-v", "error", "-threads", "1",
                "-filter_complex_threads", "1", *seek_args(start_frame, fps, video_start(master)), "-i", str(master)]
        for path in encoded:
            argv += ["-threads", "1", "-i", str(path)]
        argv += ["-filter_complex", ";".join(graph)]
        for i in range(len(encoded)):
            argv += ["-map", f"[o{i}]", "-f", "null", "-"]
        run(argv, f"scoring {len(encoded)} encodes with SSIM")
        scores = []
        for path in stats:
            values = [float(v) for v in _ALL.findall(path.read_text())]
            scores.append(sum(values) / len(values) if values else 0.0)
    return scores


def _trial(master: Path, fps: Fraction, size: tuple[int, int], sample: Sample, sizes: Sequence[tuple[int, int]],
           crfs: Sequence[float], preset: str, scratch: Path | None,
           trials: Trials) -> list[tuple[int, int, float, int, float]]:
    """(width, height, crf, bytes, ssim) of each trial of one sample."""
    chunk = sample.chunk
    rungs = tuple(RungEncode(f"trial-{h}p-crf{crf:g}", trials.codec, w, h, 100_000, hdr=trials.hdr, crf=crf)
                  for (w, h) in sizes for crf in crfs)
    template = trials.base or ChunkEncode(master=master, fps=fps, start_frame=0, frame_count=0, rungs=(), outputs=())
    with tempfile.TemporaryDirectory(dir=scratch, prefix="trial-") as tmp:
        job = replace(template, master=master, fps=fps, start_frame=chunk.start_frame, frame_count=chunk.frame_count,
                      rungs=rungs, outputs=tuple(Path(tmp) / f"{r.rendition_id}.mp4" for r in rungs),
                      preset=preset, threads=1)
        if job.deinterlace is None:
            job = replace(job, deinterlace=interlaced(master))
        encoded = encode_chunk(job, scratch)
        scores = ssim_of(master, fps, chunk.start_frame, chunk.frame_count, [e.path for e in encoded], size, scratch,
                         tonemap_lut=job.tonemap_lut if job.source_hdr and not trials.hdr else None,
                         ten_bit=trials.hdr, deinterlace=bool(job.deinterlace))
    return [(r.width, r.height, r.crf or 0.0, e.size_bytes, s) for r, e, s in zip(rungs, encoded, scores, strict=True)]


def analyze(master: Path, fps: Fraction, frame_count: int, size: tuple[int, int], heights: Sequence[int],
            crfs: Sequence[float] | None = None, preset: str = "veryfast", workers: int = 2,
            spread: int | None = None, at_cuts: int | None = None, scratch: Path | None = None,
            ceiling_kbps: float | None = None, trials: Trials = Trials(),
            cuts: Sequence[tuple[int, float]] | None = None) -> Analysis:
    """The rate–quality points of a master for one encoder group (``trials``; H.264 SDR by
    default): every (resolution, CRF) over the sampled chunks.

    With ``ceiling_kbps``: when the top resolution at the lowest trial CRF is far under the
    ceiling (simple content), it is also tried at lower CRFs, down to ``MIN_CRF``, so the top
    rung can be as good as a fixed rung that spends the ceiling would be. ``cuts``: the scene
    changes when already found (a second group of the same master)."""
    crfs = tuple(crfs or trials.crfs)
    cuts = scene_changes(master, fps) if cuts is None else list(cuts)
    grid = chunk_grid(frame_count, fps)
    # Two spread samples, one more per hour of title (1,800 chunks), up to six.
    samples = pick_samples(grid, cuts, spread or trials.spread or min(6, 2 + len(grid) // 1800),
                           trials.at_cuts if at_cuts is None else at_cuts)
    sizes = trial_sizes(size[0], size[1], heights)
    points = _points(master, fps, size, samples, sizes, crfs, preset, workers, scratch, trials)
    top = max(points, key=lambda p: (p.height, -p.crf))  # top resolution, lowest CRF
    extra = _lower_crfs(top.crf, top.kbps, ceiling_kbps) if ceiling_kbps else []
    if extra:
        points += _points(master, fps, size, samples, [(top.width, top.height)], extra, preset, workers, scratch,
                          trials)
    return Analysis(samples, points, list(cuts), tuple(sorted({*crfs, *extra})), preset)


def _lower_crfs(crf: float, kbps: float, ceiling_kbps: float) -> list[float]:
    """CRFs below ``crf`` in steps of 6 whose rate (about doubling per step) fits the ceiling."""
    out = []
    while crf > MIN_CRF and kbps * 2 <= ceiling_kbps:
        crf, kbps = max(MIN_CRF, crf - 6), kbps * 2
        out.append(crf)
    return out


def _points(master: Path, fps: Fraction, size: tuple[int, int], samples: Sequence[Sample],
            sizes: Sequence[tuple[int, int]], crfs: Sequence[float], preset: str, workers: int,
            scratch: Path | None, trials: Trials) -> list[RatePoint]:
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results = list(pool.map(lambda s: _trial(master, fps, size, s, sizes, crfs, preset, scratch, trials),
                                samples))
    seconds = [float(s.chunk.frame_count / fps) for s in samples]
    frames = [s.chunk.frame_count for s in samples]
    points = []
    for k, (w, h, crf, _, _) in enumerate(results[0]):
        sizes_b = [r[k][3] for r in results]
        points.append(RatePoint(w, h, crf, round(sum(sizes_b) * 8 / 1000 / sum(seconds), 1),
                                round(sum(r[k][4] * n for r, n in zip(results, frames, strict=True)) / sum(frames), 6),
                                round(max(b * 8 / 1000 / t for b, t in zip(sizes_b, seconds, strict=True)), 1)))
    return points
