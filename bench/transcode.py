"""Chunked transcoding vs one ffmpeg pass, on the same generated master, in one process.

(a) one ffmpeg command encoding the whole ladder in a single pass (the reference; run before,
    between and after the calibrated chunked runs, each of which is judged against the mean
    of the two single passes around it: the machine's speed drifts by 10-15 % in minutes);
(b) ReelStream's pipeline (ingest -> jobs -> workers -> completion) with 1 and with 2
    worker processes, each pinned to one core, rate control calibrated per title (the fix);
    the fleet is up and settled before the ingest, as a fleet waiting for work is;
(c) the same with 2 workers and naive per-chunk ABR, to show what the fix fixes.

Prints wall and CPU time, per-rung PSNR/SSIM (measured the same way for every method:
the decoded output against the master scaled to the rung) and bitrate error, the ratios,
and a projection for a 2-hour film on N workers; ends with ONE JSON line, which records the
load average at start and end (the machine is shared: compare runs only at similar load).
"2 workers vs 1" is the fleet phase (jobs published -> title transcoded); the end-to-end
ratio, with the one-process ingest in it, is printed too.

CPU accounting. The single pass only encodes: it neither uploads, hashes, probes nor
decode-tests the master. So the target (``cpu_met``: <= 1.10x single pass) is judged on
the chunked method's *transcode phase*, the CPU it spends producing the ladder: the
rate-control calibration (its trial encodes and the sample chunks it keeps as final
outputs) plus the workers' CPU from the moment the fleet is settled (their jobs, and their
idling while the ingest runs). The end-to-end ratio (every process: upload, validation,
fleet start-up, the bench's own completion tracker) is printed and kept in the JSON beside
it (``cpu_end_to_end_met``). Both chunked runs must meet the target. Each worker's CPU is
also split into its own process (polling the log, claims, storing outputs, events) and its
ffmpeg children (the encodes), from /proc/PID/stat.

Default: a 30-s 720p24 master and the 6 H.264 rungs up to 720p (about 7 minutes on 2 cores, quiet);
``--full`` is the issue's 60-s 1080p master with the 8 H.264 rungs up to 1080p (about 30 minutes here).
``--speedup-rounds N`` measures only 2 workers vs 1, in N alternating rounds on one ingested
title (the machine is shared: a load change during one long run decides a single ratio).
``--cpu-rounds N [--workers W]`` measures only the CPU target: N chunked runs with W workers
(default 2), each between two single passes, and the median of the N ratios (5 rounds: about
8 minutes). ``--cpu-paired N`` measures it for 1 worker with the drift taken out: the single
pass runs at the same time as the pipeline's transcode phase, each on a core of its own, the
cores swapped every round (about 2 minutes a round).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reelstream.config import Settings
from reelstream.ingest.plan import AUDIO_KBPS
from reelstream.ingest.service import IngestService
from reelstream.media import tools
from reelstream.media.probe import count_frames, probe
from reelstream.media.transcode.commands import RungEncode, aac_args, h264_args
from reelstream.media.transcode.ladder import DEFAULT_LADDER, Rung, ladder_for
from reelstream.processors.embedded import run_embedded
from reelstream.processors.transcode.completion import TranscodeCompletionProcessor
from reelstream.runtime import Runtime
from reelstream.workers.pool import start_pool, stop_pool
from tests.support.media import (
    make_audio,
    make_master,
    title_metadata,
    write_metadata,
    write_srt,
    write_vtt,
)

FILM_S = 2 * 3600
TARGET_MIN = 15


def cpu_seconds() -> float:
    return sum(cpu_split_s())


def cpu_split_s() -> tuple[float, float]:
    """(this process's own, its reaped children's) CPU seconds so far."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


@dataclass
class Run:
    name: str
    wall_s: float = 0.0
    cpu_s: float = 0.0
    files: dict[str, Path] = field(default_factory=dict)  # rendition -> one playable file
    quality: dict[str, dict[str, float]] = field(default_factory=dict)
    job_ms: list[int] = field(default_factory=list)
    ingest_cpu_s: float = 0.0  # upload + validation + rate-control calibration + plan
    ingest_phases: dict[str, float] = field(default_factory=dict)  # CPU s of each of those
    ingest_own_phases: dict[str, float] = field(default_factory=dict)  # of which the ingest's own Python
    ingest_wall_s: float = 0.0
    fleet_wall_s: float = 0.0  # from the last job published to TitleTranscoded (the fleet already up)
    replayed: int = 0  # chunk results kept from calibration (not encoded again by a worker)
    per_worker: dict[str, int] = field(default_factory=dict)  # worker -> chunk jobs it encoded
    reported: dict[str, dict[str, float]] = field(default_factory=dict)  # rendition -> mean of the events' figures
    last_result_to_done_s: float = 0.0  # the last chunk's result -> TitleTranscoded seen
    acceptance: dict[str, Any] = field(default_factory=dict)  # frame-exact, decodable, tracks
    worker_cpu_s: float = 0.0  # the workers and their ffmpeg processes, start-up included
    worker_start_cpu_s: float = 0.0  # of which before the title: interpreter, imports, joining the group
    per_worker_title_cpu_s: list[float] = field(default_factory=list)  # each worker's, from the fleet settled
    # each worker's CPU from the fleet settled to the title done, split: its own Python process
    # (polling the log, claims, storing outputs, events) and its ffmpeg children (the encodes)
    per_worker_split_s: list[tuple[float, float]] = field(default_factory=list)
    cpu_samples_s: list[float] = field(default_factory=list)  # single pass: its CPU in each run
    # The single-pass CPU this run is judged against: the mean of the single passes run just
    # before and just after it (``main``), not one reference for the whole bench.
    reference_cpu_s: float = 0.0

    @property
    def worker_title_cpu_s(self) -> float:
        """The workers' CPU from the moment the fleet was settled: the title's jobs (and the
        fleet idling while the ingest ran), not the once-per-fleet start-up."""
        return self.worker_cpu_s - self.worker_start_cpu_s

    @property
    def calibration_cpu_s(self) -> float:
        return self.ingest_phases.get(_CALIBRATION, 0.0)

    @property
    def transcode_cpu_s(self) -> float:
        """The transcode phase: what the chunked method spends encoding the ladder, i.e. the
        workers' jobs plus the rate-control calibration (its trial encodes, and the sample
        chunks it keeps as final outputs). Not the upload, validation or the bench's tracker:
        the single pass does none of them."""
        return self.worker_title_cpu_s + self.calibration_cpu_s


def single_pass_command(master: Path, rungs: list[Rung], out: Path, threads: int = 0,
                        audio: Sequence[tuple[Path, int]] = ()) -> tuple[list[str], dict[str, Path]]:
    """The one ffmpeg command for the whole ladder (``threads`` 0: ffmpeg's and x264's defaults):
    every video rung and every audio track (``audio``: (file, audio stream index) each, AAC as
    the pipeline's audio jobs make it), so that both methods do the same work."""
    out.mkdir(parents=True, exist_ok=True)
    sources = list(dict.fromkeys([master, *(source for source, _ in audio)]))
    graph = f"[0:v]split={len(rungs)}" + "".join(f"[s{i}]" for i in range(len(rungs))) + ";"
    graph += ";".join(f"[s{i}]scale={r.width}:{r.height}:flags=bicubic,setsar=1,format=yuv420p[v{i}]"
                      for i, r in enumerate(rungs))
    limit = ["-threads", str(threads)] if threads else []
    argv = [tools.ffmpeg(), "-nostdin", "-hide_banner", "-v", "error", "-y",
            *(["-filter_complex_threads", str(threads)] if threads else []),
            *[arg for source in sources for arg in (*limit, "-i", str(source))], "-filter_complex", graph]
    files = {}
    for i, r in enumerate(rungs):
        encode = RungEncode(r.rendition_id, r.codec, r.width, r.height, r.bitrate_kbps)
        path = out / f"single-{r.rendition_id}.mp4"
        argv += ["-map", f"[v{i}]", *h264_args(encode, 48, "veryfast"), *limit, "-an", str(path)]
        files[r.rendition_id] = path
    for n, (source, stream) in enumerate(audio):
        argv += ["-map", f"{sources.index(source)}:a:{stream}", *aac_args(AUDIO_KBPS), "-vn",
                 str(out / f"single-audio-{n}.mp4")]
    return argv, files


def single_pass(master: Path, rungs: list[Rung], out: Path, audio: Sequence[tuple[Path, int]] = ()) -> Run:
    run = Run("single pass")
    argv, run.files = single_pass_command(master, rungs, out, audio=audio)
    cpu, wall = cpu_seconds(), time.monotonic()
    subprocess.run(argv, check=True)
    run.wall_s, run.cpu_s = time.monotonic() - wall, cpu_seconds() - cpu
    return run


def chunked(name: str, master: Path, metadata: Path, rungs: list[Rung], workers: int, calibrate: bool,
            work: Path, check: bool = True, calibrating: Callable[[], None] | None = None) -> Run:
    """The fleet is started first and waits for work, as a fleet does: its members have
    joined the group and split the partitions before the first job arrives, so the
    measurement is of encoding, not of a rebalance in the middle of it. ``calibrating`` is
    called as the ingest's calibration (the start of the transcode phase) begins."""
    run = Run(name)
    data = work / name.replace(" ", "-")
    runtime = Runtime(Settings(data_dir=data))
    data.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "REEL_DATA_DIR": str(data)}
    cpu = cpu_seconds()
    pool = start_pool(workers, threads=1, capabilities="cpu", env=env, log_dir=data)
    _wait_for_fleet(runtime, workers)
    started_cpu = [process_cpu_s(proc.pid) for proc in pool]
    started_split = [process_cpu_split_s(proc.pid) for proc in pool]
    run.worker_start_cpu_s = sum(started_cpu)
    ingest_cpu, ingest_wall = cpu_seconds(), time.monotonic()
    phases = _Phases(calibrating)
    IngestService(runtime, tuple(rungs), calibrate_rate=calibrate, progress=phases).ingest(master, metadata)
    run.ingest_cpu_s, run.ingest_wall_s = cpu_seconds() - ingest_cpu, time.monotonic() - ingest_wall
    run.ingest_phases = phases.done()
    run.ingest_own_phases = {k: round(v, 2) for k, v in phases.own.items() if k != "end"}
    fleet = time.monotonic()
    done = asyncio.run(_complete(runtime))
    run.fleet_wall_s = done[4] - fleet  # until TitleTranscoded was read
    run.wall_s = done[4] - ingest_wall  # from the ingest's start: the fleet was already up
    for proc, (own, kids) in zip(pool, started_split, strict=True):
        now_own, now_kids = process_cpu_split_s(proc.pid)
        run.per_worker_split_s.append((now_own - own, now_kids - kids))
    for proc, start in zip(pool, started_cpu, strict=True):  # reaped here: each worker's CPU, its ffmpeg runs included
        os.kill(proc.pid, signal.SIGTERM)  # not Popen.send_signal: it would reap the worker first
        _, _, usage = os.wait4(proc.pid, 0)
        proc.returncode = 0
        run.worker_cpu_s += usage.ru_utime + usage.ru_stime
        run.per_worker_title_cpu_s.append(usage.ru_utime + usage.ru_stime - start)
    run.cpu_s = cpu_seconds() - cpu
    run.job_ms, run.replayed, run.per_worker, run.reported, _, run.last_result_to_done_s = done
    if not check:  # CPU rounds: the outputs were checked by the full bench
        runtime.close()
        return run
    for r in rungs:  # the packager's view: chunks concatenated in index order
        keys = [o.key for o in runtime.objects.list(f"titles/bench/renditions/{r.rendition_id}/chunks/")]
        listing = work / f"{name}-{r.rendition_id}.txt"
        listing.write_text("".join(f"file '{data / 'objects' / k}'\n" for k in keys))
        joined = work / f"{name}-{r.rendition_id}.mp4".replace(" ", "-")
        subprocess.run([tools.ffmpeg(), "-nostdin", "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i",
                        str(listing), "-c", "copy", str(joined)], check=True)
        run.files[r.rendition_id] = joined
    run.acceptance = _acceptance(runtime, master, run.files)
    runtime.close()
    return run


_CALIBRATION = "calibration and plan"
_PHASES = (("validating", "validation (and the plan, when not calibrating)"), ("calibrating", _CALIBRATION))


def process_cpu_s(pid: int) -> float:
    """CPU seconds of a live process so far, its reaped children's included (/proc/PID/stat
    utime, stime, cutime, cstime)."""
    return sum(process_cpu_split_s(pid))


def process_cpu_split_s(pid: int) -> tuple[float, float]:
    """(its own, its reaped children's) CPU seconds of a live process so far: /proc/PID/stat
    utime + stime, cutime + cstime. A worker's children are its ffmpeg (and x265) runs."""
    fields = [int(f) for f in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[11:15]]
    tick = os.sysconf("SC_CLK_TCK")
    return (fields[0] + fields[1]) / tick, (fields[2] + fields[3]) / tick


class _Phases:
    """CPU time of each ingest phase, cut where the service reports its steps."""

    def __init__(self, calibrating: Callable[[], None] | None = None) -> None:
        self.current, self.since, self.cpu = "upload", cpu_seconds(), {}
        self.own_since, self.own = cpu_split_s()[0], {}  # the ingest's own Python, apart from its ffmpeg
        self.calibrating = calibrating

    def uploading(self, name: str, done: int, total: int) -> None:
        pass

    def step(self, message: str) -> None:
        self.cpu[self.current] = self.cpu.get(self.current, 0.0) + cpu_seconds() - self.since
        self.own[self.current] = self.own.get(self.current, 0.0) + cpu_split_s()[0] - self.own_since
        self.current = next((v for k, v in _PHASES if message.startswith(k)), message)
        if self.current == _CALIBRATION and self.calibrating:
            self.calibrating()
            self.calibrating = None
        self.since, self.own_since = cpu_seconds(), cpu_split_s()[0]

    def done(self) -> dict[str, float]:
        self.step("end")
        return {k: round(v, 2) for k, v in self.cpu.items() if k != "end"}


def speedup(master: Path, metadata: Path, rungs: list[Rung], rounds: int, work: Path) -> dict[str, Any]:
    """2 workers vs 1 on one ingested title, alternating 1, 2, 1, 2 ... fleets, so that a change
    in the (shared) machine's load falls on both sides alike; the median of the rounds' ratios.

    The title is ingested once; each fleet gets a copy of what the ingest produced (objects
    hard-linked, events re-appended to a fresh log) after the fleet is up and settled, so every
    round encodes the same jobs from the same plan."""
    template = work / "ingested"
    runtime = Runtime(Settings(data_dir=template))
    IngestService(runtime, tuple(rungs)).ingest(master, metadata)
    reader = runtime.log.consumer(["reel.catalog", "reel.transcode.results", "reel.transcode.jobs"], group_id=None)
    records = []
    while batch := reader.poll(10_000, 0.5):
        records += batch
    reader.close()
    runtime.close()
    rounds_s: list[dict[int, float]] = []
    for round_ in range(rounds):
        walls = {}
        for workers in (1, 2):
            data = work / f"round-{round_}-{workers}"
            shutil.copytree(template / "objects", data / "objects", copy_function=os.link)
            fleet_runtime = Runtime(Settings(data_dir=data))
            pool = start_pool(workers, threads=1, capabilities="cpu", env={**os.environ, "REEL_DATA_DIR": str(data)},
                              log_dir=data)
            _wait_for_fleet(fleet_runtime, workers)
            started = time.monotonic()
            for record in sorted(records, key=lambda r: r.timestamp_ms):
                fleet_runtime.log.append(record.topic, record.key, record.value, headers=record.headers)
            fleet_runtime.log.flush()
            walls[workers] = asyncio.run(_complete(fleet_runtime))[4] - started
            stop_pool(pool)
            fleet_runtime.close()
        rounds_s.append(walls)
        print(f"  round {round_ + 1}: 1 worker {walls[1]:.1f}s, 2 workers {walls[2]:.1f}s, "
              f"ratio {walls[1] / walls[2]:.2f} (load {os.getloadavg()[0]:.1f})", flush=True)
    ratios = sorted(w[1] / w[2] for w in rounds_s)
    return {"rounds": [{"1": round(w[1], 2), "2": round(w[2], 2)} for w in rounds_s],
            "ratios": [round(r, 3) for r in ratios], "median_speedup": _median(ratios)}


def cpu_rounds(master: Path, metadata: Path, rungs: list[Rung], audio: Sequence[tuple[Path, int]], rounds: int,
               workers: int, work: Path) -> dict[str, Any]:
    """The CPU target on its own: S C S C S ... (S the single pass, C the chunked pipeline with
    ``workers`` workers, ingest and calibration included), each C judged against the mean of
    the two S around it; the median of the rounds' ratios. One bench run gives one ratio, and
    the machine's speed moves it by several points (the single pass alone took 73.7, 67.2 and
    63.4 s of CPU within six minutes)."""
    singles = [single_pass(master, rungs, work / "cpu-single-0", audio).cpu_s]
    rows = []
    for round_ in range(rounds):
        run = chunked(f"cpu round {round_ + 1}", master, metadata, rungs, workers, True, work, check=False)
        singles.append(single_pass(master, rungs, work / f"cpu-single-{round_ + 1}", audio).cpu_s)
        reference = (singles[-2] + singles[-1]) / 2
        rows.append({"single_before_s": round(singles[-2], 2), "chunked_s": round(run.transcode_cpu_s, 2),
                     "calibration_s": round(run.calibration_cpu_s, 2), "workers_s": round(run.worker_title_cpu_s, 2),
                     "single_after_s": round(singles[-1], 2), "ratio": round(run.transcode_cpu_s / reference, 3)})
        print(f"  round {round_ + 1}: single {singles[-2]:.1f}s, chunked ({workers} workers) {run.transcode_cpu_s:.1f}s "
              f"(calibration {run.calibration_cpu_s:.1f}, workers {run.worker_title_cpu_s:.1f}), single "
              f"{singles[-1]:.1f}s: ratio {rows[-1]['ratio']:.3f} (load {os.getloadavg()[0]:.1f})", flush=True)
    ratios = sorted(r["ratio"] for r in rows)
    return {"workers": workers, "rounds": rows, "ratios": ratios, "median_cpu_ratio": _median(ratios)}


def cpu_paired(master: Path, metadata: Path, rungs: list[Rung], audio: Sequence[tuple[Path, int]], rounds: int,
               work: Path) -> dict[str, Any]:
    """The CPU target for 1 worker with the machine's drift taken out: the single pass runs
    *at the same time* as the chunked pipeline's transcode phase, each on a core of its own
    (the single pass on one thread, the pipeline's ingest, calibration and worker pinned to the
    other), so a change in the host's speed falls on both alike; the cores swap every round.
    Run one after the other, the same single pass took 63-74 s of CPU within minutes; side by
    side the ratio moves by well under a point (measured: 1.077 and 1.081 with the cores swapped).
    Needs two cores. The single pass starts when the ingest starts calibrating; its CPU comes
    from its own rusage (reaped after the chunked run's accounting has closed)."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        raise SystemExit("--cpu-paired needs two cores: the single pass and the pipeline each take one")
    rows = []
    try:
        for round_ in range(rounds):
            single_core, own_core = (cores[0], cores[1]) if round_ % 2 == 0 else (cores[1], cores[0])
            os.sched_setaffinity(0, {own_core})  # this thread; the ingest's threads and the worker inherit it
            argv, _ = single_pass_command(master, rungs, work / f"paired-single-{round_ + 1}", threads=1, audio=audio)
            beside: list[subprocess.Popen[bytes]] = []

            def start_single(argv: list[str] = argv, core: int = single_core,
                             beside: list[subprocess.Popen[bytes]] = beside) -> None:
                beside.append(subprocess.Popen(["taskset", "-c", str(core), *argv]))

            run = chunked(f"paired round {round_ + 1}", master, metadata, rungs, 1, True, work, check=False,
                          calibrating=start_single)
            if not beside:
                raise SystemExit("the ingest never reported its calibration: nothing ran beside it")
            _, status, usage = os.wait4(beside[0].pid, 0)
            beside[0].returncode = 0
            if status:
                raise SystemExit(f"the single pass failed (wait status {status})")
            single_s = usage.ru_utime + usage.ru_stime
            rows.append({"single_core": single_core, "single_s": round(single_s, 2),
                         "chunked_s": round(run.transcode_cpu_s, 2), "calibration_s": round(run.calibration_cpu_s, 2),
                         "calibration_own_s": run.ingest_own_phases.get(_CALIBRATION, 0.0),
                         "workers_s": round(run.worker_title_cpu_s, 2),
                         "worker_own_s": round(run.per_worker_split_s[0][0], 2),
                         "ratio": round(run.transcode_cpu_s / single_s, 3)})
            print(f"  round {round_ + 1}: single pass on core {single_core} {single_s:.1f}s, beside it chunked "
                  f"(1 worker) {run.transcode_cpu_s:.1f}s (calibration {run.calibration_cpu_s:.1f}, worker "
                  f"{run.worker_title_cpu_s:.1f}): ratio {rows[-1]['ratio']:.3f}", flush=True)
    finally:
        os.sched_setaffinity(0, set(cores))
    ratios = sorted(r["ratio"] for r in rows)
    return {"workers": 1, "rounds": rows, "ratios": ratios, "median_cpu_ratio": _median(ratios)}


def _median(values: list[float]) -> float:
    ordered, mid = sorted(values), len(values) // 2
    return round(ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2, 3)


def _acceptance(runtime: Runtime, master: Path, files: dict[str, Path]) -> dict[str, Any]:
    """The issue's "done": every rung frame-exact (the master's frame count, joined in index
    order) and decodable by ffmpeg without a single error; every audio and subtitle track."""
    frames = probe(master).video.frame_count  # type: ignore[union-attr]
    rungs = {}
    for rendition, path in files.items():
        decode = subprocess.run([tools.ffmpeg(), "-nostdin", "-v", "error", "-i", str(path), "-f", "null", "-"],
                                capture_output=True, text=True, check=False)
        rungs[rendition] = {"frames": count_frames(path), "decode_errors": len(decode.stderr.splitlines())
                            + (decode.returncode != 0)}
    audio = sorted(o.key.rsplit("/", 1)[1] for o in runtime.objects.list("titles/bench/audio/"))
    text = sorted(o.key.rsplit("/", 1)[1] for o in runtime.objects.list("titles/bench/subtitles/"))
    ok = all(r["frames"] == frames and r["decode_errors"] == 0 for r in rungs.values())
    return {"master_frames": frames, "rungs": rungs, "audio": audio, "subtitles": text, "rungs_ok": ok}


def _wait_for_fleet(runtime: Runtime, workers: int, settle_s: float = 2.5) -> None:
    """Until every worker has announced itself (it is then a group member), plus two
    heartbeat intervals for every member to take its share of the partitions."""
    reader = runtime.log.consumer(["reel.workers"], group_id=None)
    started: set[str] = set()
    deadline = time.monotonic() + 120
    try:
        while len(started) < workers:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {len(started)} of {workers} workers started")
            for record in reader.poll(100, 0.2):
                event = runtime.codec.decode(record.value)
                if event.type == "TranscodeWorkerStarted":
                    started.add(event["worker_id"])
    finally:
        reader.close()
    time.sleep(settle_s)


async def _complete(runtime: Runtime) -> tuple[list[int], int, dict[str, int], dict[str, dict[str, float]], float,
                                               float]:
    """Encode times of the jobs workers encoded, how many results came from the ingest (kept
    from calibration), jobs per worker, the mean per-chunk PSNR/SSIM the events report per
    rung, and the delay from the last result to TitleTranscoded; TitleTranscoded ends it."""
    stop = asyncio.Event()
    task = asyncio.create_task(run_embedded([TranscodeCompletionProcessor()], runtime.log, runtime.state,
                                            runtime.codec, "bench", stop))
    reader = runtime.log.consumer(["reel.catalog", "reel.transcode.results"], group_id=None)
    job_ms: list[int] = []
    replayed = 0
    per_worker: dict[str, int] = {}
    figures: dict[str, dict[str, list[float]]] = {}
    last_result = done_time = 0.0  # event times (s): the last chunk's result, TitleTranscoded
    done_at: float | None = None
    try:
        while True:
            records = await asyncio.to_thread(reader.poll, 500, 0.2)
            if done_at is not None and not records:  # drained: the catalog can be read before the results
                reported = {r: {k: round(sum(v) / len(v), 5) for k, v in f.items() if v} for r, f in figures.items()}
                return job_ms, replayed, per_worker, reported, done_at, max(0.0, done_time - last_result)
            for record in records:
                event = runtime.codec.decode(record.value)
                if event.type == "ChunkTranscoded":
                    last_result = max(last_result, event.header.event_time.timestamp())
                    if event["worker_id"].startswith("ingest@"):
                        replayed += 1
                    else:
                        job_ms.append(event["encode_ms"])
                        per_worker[event["worker_id"]] = per_worker.get(event["worker_id"], 0) + 1
                    for out in event["outputs"]:
                        rung = figures.setdefault(out["rendition_id"], {"psnr_db": [], "ssim": []})
                        for name in ("psnr_db", "ssim"):
                            if out[name] is not None:
                                rung[name].append(out[name])
                if event.type == "TitleTranscodeFailed":
                    raise RuntimeError(f"bench title failed: {event['reason']}")
                if event.type == "TitleTranscoded":
                    done_at, done_time = time.monotonic(), event.header.event_time.timestamp()
    finally:
        reader.close()
        stop.set()
        await task


def measure(run: Run, master: Path, rungs: list[Rung], seconds: float) -> None:
    """PSNR and SSIM of every rung's output against the master scaled to the rung: one ffmpeg
    per method, decoding the master once for all its rungs (named filters tell them apart)."""
    graph = [f"[0:v]split={len(rungs)}" + "".join(f"[m{i}]" for i in range(len(rungs)))]
    argv = [tools.ffmpeg(), "-nostdin", "-hide_banner", "-i", str(master)]
    for i, r in enumerate(rungs):
        argv += ["-i", str(run.files[r.rendition_id])]
        graph += [f"[m{i}]scale={r.width}:{r.height}:flags=bicubic,setsar=1,format=yuv420p,split[r{i}a][r{i}b]",
                  f"[{i + 1}:v]split[d{i}a][d{i}b]", f"[d{i}a][r{i}a]psnr@p{i}", f"[d{i}b][r{i}b]ssim@s{i}"]
    out = subprocess.run([*argv, "-lavfi", ";".join(graph), "-f", "null", "-"], capture_output=True, text=True,
                         check=True).stderr
    psnrs = {int(i): float(v) for i, v in re.findall(r"\[psnr@p(\d+) @ [^\]]+\] PSNR [^\n]*?average:([\d.]+)", out)}
    ssims = {int(i): float(v) for i, v in re.findall(r"\[ssim@s(\d+) @ [^\]]+\] SSIM [^\n]*?All:([\d.]+)", out)}
    for i, r in enumerate(rungs):
        psnr, ssim = psnrs[i], ssims[i]
        path = run.files[r.rendition_id]
        kbps = path.stat().st_size * 8 / 1000 / seconds
        run.quality[r.rendition_id] = {"psnr_db": round(psnr, 3), "ssim": round(ssim, 5), "kbps": round(kbps, 1),
                                       "bitrate_error_pct": round((kbps / r.bitrate_kbps - 1) * 100, 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="the issue's 60-s 1080p master (about 30 min here)")
    parser.add_argument("--seconds", type=int, help="master duration (default 30, --full 60)")
    parser.add_argument("--size", help="master size (default 1280x720, --full 1920x1080)")
    parser.add_argument("--keep", type=Path, help="keep the work directory here")
    parser.add_argument("--speedup-rounds", type=int, default=0, metavar="N",
                        help="only the 2-vs-1-worker speedup: N alternating rounds on one ingested title")
    parser.add_argument("--cpu-rounds", type=int, default=0, metavar="N",
                        help="only the CPU target: N chunked runs, each between two single passes (median ratio)")
    parser.add_argument("--workers", type=int, default=2, help="with --cpu-rounds: the fleet's size (default 2)")
    parser.add_argument("--cpu-paired", type=int, default=0, metavar="N",
                        help="only the CPU target for 1 worker: N rounds, the single pass beside the pipeline "
                             "on the other core, at the same time (median ratio)")
    args = parser.parse_args()
    seconds = args.seconds or (60 if args.full else 30)
    size = args.size or ("1920x1080" if args.full else "1280x720")
    width, height = (int(x) for x in size.split("x"))
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-transcode-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"generating a {seconds}-s {size} 24 fps master with film grain and 2-s GOPs ...", flush=True)
    # --full is the acceptance delivery: two audio languages in the master, an
    # audio-description sidecar and two subtitle files (the single pass encodes the three audio
    # tracks too, as the pipeline's audio jobs do).
    languages = ("en", "fr") if args.full else ("en",)
    master = make_master(work / "master.mp4", seconds=seconds, size=size, languages=languages, noise=12)
    extras: dict[str, Any] = {}
    if args.full:
        make_audio(work / "en-ad.m4a", seconds=seconds, language="en")
        write_srt(work / "en.srt", [(1.0, 3.0, "Hello"), (seconds - 3.0, seconds - 1.0, "Goodbye")])
        write_vtt(work / "fr.vtt", [(1.0, 3.0, "Bonjour"), (seconds - 3.0, seconds - 1.0, "Au revoir")])
        extras = {"subtitles": [{"file": "en.srt", "language": "en", "sdh": True}, {"file": "fr.vtt", "language": "fr"}],
                  "audio": [{"file": "en-ad.m4a", "language": "en", "audio_description": True}]}
    metadata = write_metadata(work / "title.json", title_metadata("bench", master, languages=languages, **extras))
    rungs = [r for r in ladder_for(width, height, False, DEFAULT_LADDER) if r.codec == "h264"]
    # The single pass encodes the audio tracks too, as the pipeline's audio jobs do.
    audio = [(master, n) for n in range(len(languages))] + ([(work / "en-ad.m4a", 0)] if args.full else [])
    print(f"ladder: {', '.join(r.rendition_id for r in rungs)}", flush=True)
    load_start = os.getloadavg()
    print(f"load average at start: {load_start}", flush=True)
    if args.speedup_rounds:
        load = os.getloadavg()
        result = speedup(master, metadata, rungs, args.speedup_rounds, work)
        print(f"2 workers vs 1, fleet phase, median of {args.speedup_rounds} alternating rounds: "
              f"{result['median_speedup']:.2f}x (target 1.8x); load average {load} -> {os.getloadavg()}")
        print(json.dumps({"bench": "transcode-speedup", "master": {"seconds": seconds, "size": size},
                          "load_average_start": [round(x, 2) for x in load],
                          "load_average_end": [round(x, 2) for x in os.getloadavg()], **result,
                          "speedup_met": result["median_speedup"] >= 1.8}))
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        return 0
    if args.cpu_rounds or args.cpu_paired:
        load = os.getloadavg()
        if args.cpu_paired:
            result = cpu_paired(master, metadata, rungs, audio, args.cpu_paired, work)
            how = f"side by side, median of {args.cpu_paired}"
        else:
            result = cpu_rounds(master, metadata, rungs, audio, args.cpu_rounds, args.workers, work)
            how = f"median of {args.cpu_rounds}"
        print(f"chunked ({result['workers']} workers, transcode phase) / single-pass CPU, {how} "
              f"rounds: {result['median_cpu_ratio']:.3f}x (target 1.10x); load average {load} -> {os.getloadavg()}")
        print(json.dumps({"bench": "transcode-cpu-paired" if args.cpu_paired else "transcode-cpu",
                          "master": {"seconds": seconds, "size": size},
                          "load_average_start": [round(x, 2) for x in load],
                          "load_average_end": [round(x, 2) for x in os.getloadavg()], **result,
                          "cpu_met": result["median_cpu_ratio"] <= 1.10}))
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        return 0
    # The machine's speed drifts: the same 2-worker jobs took 40.1 s and then 47.2 s of CPU ten
    # minutes apart (a shared host). So each chunked run is judged against the single passes
    # run just before and just after it (S C1 S C2 S N), which cancels a drift that is steady
    # across the three; the naive run, not a CPU target, is judged against the last one.
    singles = [single_pass(master, rungs, work / "single-0", audio)]
    print(f"  single pass: {singles[-1].wall_s:.1f}s wall, {singles[-1].cpu_s:.1f}s CPU", flush=True)
    runs = [singles[0]]
    for name, workers, calibrate in (("chunked 1 worker", 1, True), ("chunked 2 workers", 2, True),
                                     ("naive ABR 2 workers", 2, False)):
        runs.append(chunked(name, master, metadata, rungs, workers, calibrate, work))
        print(f"  {name}: {runs[-1].wall_s:.1f}s wall", flush=True)
        if calibrate:
            singles.append(single_pass(master, rungs, work / f"single-{len(singles)}", audio))
            print(f"  single pass again: {singles[-1].wall_s:.1f}s wall, {singles[-1].cpu_s:.1f}s CPU", flush=True)
            runs[-1].reference_cpu_s = (singles[-2].cpu_s + singles[-1].cpu_s) / 2
        else:
            runs[-1].reference_cpu_s = singles[-1].cpu_s
    runs[0].cpu_samples_s = [run.cpu_s for run in singles]
    runs[0].cpu_s = sum(runs[0].cpu_samples_s) / len(singles)
    runs[0].reference_cpu_s = runs[0].cpu_s
    for run in runs:
        measure(run, master, rungs, seconds)
    report(runs, rungs, seconds, size, load_start, os.getloadavg())
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def report(runs: list[Run], rungs: list[Rung], seconds: int, size: str, load_start: tuple[float, ...],
           load_end: tuple[float, ...]) -> None:
    single, one, two, naive = runs
    chunked_runs = runs[1:]
    print(f"\n{'method':<22}{'wall s':>9}{'ingest wall':>12}{'fleet wall s':>14}{'CPU s':>9}{'upload+valid.':>15}"
          f"{'calibration':>13}{'workers':>9}{'fleet start':>13}{'transcode':>11}{'jobs kept':>11}")
    for run in runs:
        other = run.ingest_cpu_s - run.calibration_cpu_s
        print(f"{run.name:<22}{run.wall_s:>9.1f}{run.ingest_wall_s:>12.1f}{run.fleet_wall_s:>14.1f}{run.cpu_s:>9.1f}"
              f"{other:>15.1f}{run.calibration_cpu_s:>13.1f}{run.worker_title_cpu_s:>9.1f}{run.worker_start_cpu_s:>13.1f}"
              f"{(run.transcode_cpu_s if run is not single else run.cpu_s):>11.1f}{run.replayed:>11}")
    print("(CPU s: end to end, every process; transcode = calibration + workers, the phase that encodes the ladder; "
          "fleet start = the workers' start-up, once per fleet, not per title)")
    print(f"\n{'rung':<18}" + "".join(f"{r.name:>26}" for r in runs))
    print(f"{'':<18}" + "".join(f"{'PSNR  SSIM   kbps err%':>26}" for _ in runs))
    for r in rungs:
        cells = []
        for run in runs:
            q = run.quality[r.rendition_id]
            cells.append(f"{q['psnr_db']:6.2f} {q['ssim']:.4f} {q['kbps']:6.0f} {q['bitrate_error_pct']:+5.1f}")
        print(f"{r.rendition_id:<18}" + "".join(f"{c:>26}" for c in cells))
    print("\nper chunk, as the ChunkTranscoded events report it (the encoder's own PSNR and SSIM of each chunk"
          " against the scaled source, luma, every frame; mean over the chunks)")
    print(f"{'rung':<18}" + "".join(f"{r.name:>26}" for r in chunked_runs))
    for r in rungs:
        cells = [f"{run.reported[r.rendition_id].get('psnr_db', 0):6.2f} {run.reported[r.rendition_id].get('ssim', 0):.4f}"
                 for run in chunked_runs]
        print(f"{r.rendition_id:<18}" + "".join(f"{c:>26}" for c in cells))
    for run in chunked_runs:
        a = run.acceptance
        per_rung = ", ".join(f"{k} {v['frames']}/{v['decode_errors']}" for k, v in a["rungs"].items())
        print(f"{run.name}: every rung {a['master_frames']} frames and 0 decode errors: {a['rungs_ok']} "
              f"(frames/errors: {per_rung}); audio {a['audio']}; subtitles {a['subtitles']}")
    for run in chunked_runs:
        print(f"{run.name}: ingest CPU s by phase {run.ingest_phases}")
    for run in chunked_runs:
        print(f"{run.name}: chunk jobs per worker {sorted(run.per_worker.values())}, "
              f"last result -> TitleTranscoded {run.last_result_to_done_s:.2f}s")
    delta = {r.rendition_id: round(two.quality[r.rendition_id]["psnr_db"] - single.quality[r.rendition_id]["psnr_db"], 3)
             for r in rungs}
    naive_delta = {r.rendition_id: round(naive.quality[r.rendition_id]["psnr_db"]
                                         - single.quality[r.rendition_id]["psnr_db"], 3) for r in rungs}
    calibrated = (one, two)
    rate_error = {run.name: {r.rendition_id: run.quality[r.rendition_id]["bitrate_error_pct"] for r in rungs}
                  for run in runs}
    rate_vs_single = {run.name: {r.rendition_id: round((run.quality[r.rendition_id]["kbps"]
                                                        / single.quality[r.rendition_id]["kbps"] - 1) * 100, 2)
                                 for r in rungs} for run in chunked_runs}
    worst_rate = max(abs(e) for run in calibrated for e in rate_error[run.name].values())
    worst_rate_vs_single = max(abs(e) for run in calibrated for e in rate_vs_single[run.name].values())
    transcode_ratio = {run.name: round(run.transcode_cpu_s / run.reference_cpu_s, 3) for run in chunked_runs}
    end_to_end_ratio = {run.name: round(run.cpu_s / run.reference_cpu_s, 3) for run in chunked_runs}
    worker_ratio = {run.name: round(run.worker_title_cpu_s / run.reference_cpu_s, 3) for run in chunked_runs}
    speedup = one.wall_s / two.wall_s  # ingest (validation, calibration) included: one process in both
    fleet_speedup = one.fleet_wall_s / two.fleet_wall_s  # jobs published -> title transcoded
    # If each worker had a core of its own: the busiest worker's CPU bounds the fleet phase.
    # Not a measurement of wall time; it shows the split and that per-job cost does not grow.
    cpu_bound_speedup = one.worker_title_cpu_s / max(two.per_worker_title_cpu_s)
    job_s = sum(one.job_ms) / len(one.job_ms) / 1000  # one chunk, every rung, one core
    chunks = FILM_S // 2
    fleet = {n: round(chunks * job_s / n / 60, 1) for n in (1, 8, 32, 64, 128, 256)}
    needed = next((n for n in range(1, 100_000) if chunks * job_s / n / 60 < TARGET_MIN), None)
    print(f"\nCPU / single-pass CPU, transcode phase (calibration + workers; the target): "
          f"{transcode_ratio[one.name]:.2f} with 1 worker, {transcode_ratio[two.name]:.2f} with 2 "
          f"(workers alone {worker_ratio[one.name]:.2f} / {worker_ratio[two.name]:.2f}); end to end, with the "
          f"upload, validation, fleet start-up and the bench's tracker: {end_to_end_ratio[one.name]:.2f} / "
          f"{end_to_end_ratio[two.name]:.2f}")
    print(f"1 worker / 2 workers: fleet phase {fleet_speedup:.2f}, end to end with the ingest {speedup:.2f} "
          "(one run each; --speedup-rounds N for the median of alternating rounds); with a core per worker at "
          f"most {cpu_bound_speedup:.2f} (1 worker's CPU / the busiest of 2 workers', "
          f"{[round(c, 1) for c in two.per_worker_title_cpu_s]} s)")
    title_chunks = len(one.job_ms) + one.replayed
    split = {run.name: [(round(own, 2), round(kids, 2)) for own, kids in run.per_worker_split_s] for run in chunked_runs}
    own_share = {run.name: round(sum(o for o, _ in run.per_worker_split_s)
                                 / max(1e-9, sum(o + k for o, k in run.per_worker_split_s)), 4) for run in chunked_runs}
    # ffmpeg CPU per chunk job (the workers' children) against the single pass's CPU per chunk
    job_vs_single = {run.name: round(sum(k for _, k in run.per_worker_split_s) / max(1, len(run.job_ms))
                                     / (run.reference_cpu_s / title_chunks), 3) for run in chunked_runs}
    print(f"single pass CPU: {[round(c, 1) for c in single.cpu_samples_s]} s, run before, between and after the "
          "chunked runs; each chunked run's reference is the mean of the two around it: "
          f"{ {run.name: round(run.reference_cpu_s, 1) for run in chunked_runs} }")
    print(f"workers' CPU for the title, (own process, ffmpeg children) s per worker: {split}; own process "
          f"{own_share}; ffmpeg per chunk job / single pass per chunk: {job_vs_single}")
    print(f"load average: start {load_start}, end {load_end}")
    print(f"PSNR chunked - single (dB): {delta}")
    print(f"PSNR naive per-chunk ABR - single (dB): {naive_delta}")
    print("bitrate error vs target (%): " + "; ".join(f"{k}: {v}" for k, v in rate_error.items()))
    print("bitrate chunked vs single pass (%): " + "; ".join(f"{k}: {v}" for k, v in rate_vs_single.items()))
    print(f"2-hour film ({chunks} chunks x {job_s:.2f}s per chunk job on one core, this ladder): "
          + ", ".join(f"{n} workers {m} min" for n, m in fleet.items()) + f"; under {TARGET_MIN} min from {needed} workers")
    result: dict[str, Any] = {
        "bench": "transcode", "master": {"seconds": seconds, "size": size, "fps": 24},
        "load_average_start": [round(x, 2) for x in load_start], "load_average_end": [round(x, 2) for x in load_end],
        "rungs": [r.rendition_id for r in rungs],
        "wall_s": {r.name: round(r.wall_s, 2) for r in runs}, "cpu_s": {r.name: round(r.cpu_s, 2) for r in runs},
        "quality": {r.name: r.quality for r in runs},
        "ingest_cpu_s": {r.name: round(r.ingest_cpu_s, 2) for r in chunked_runs},
        "ingest_cpu_s_by_phase": {r.name: r.ingest_phases for r in chunked_runs},
        "ingest_wall_s": {r.name: round(r.ingest_wall_s, 2) for r in chunked_runs},
        "worker_cpu_s": {r.name: round(r.worker_cpu_s, 2) for r in chunked_runs},
        "worker_start_cpu_s": {r.name: round(r.worker_start_cpu_s, 2) for r in chunked_runs},
        "worker_title_cpu_s": {r.name: round(r.worker_title_cpu_s, 2) for r in chunked_runs},
        "calibration_cpu_s": {r.name: round(r.calibration_cpu_s, 2) for r in chunked_runs},
        "transcode_phase_cpu_s": {r.name: round(r.transcode_cpu_s, 2) for r in chunked_runs},
        "chunks_kept_from_calibration": {r.name: r.replayed for r in chunked_runs},
        "chunk_jobs_per_worker": {r.name: sorted(r.per_worker.values()) for r in chunked_runs},
        "last_result_to_done_s": {r.name: round(r.last_result_to_done_s, 2) for r in chunked_runs},
        "reported_per_chunk_mean": {r.name: r.reported for r in chunked_runs},
        "acceptance": {r.name: r.acceptance for r in chunked_runs},
        "acceptance_met": all(r.acceptance["rungs_ok"] for r in chunked_runs),
        "cpu_ratio_transcode_phase": transcode_ratio, "cpu_ratio_end_to_end": end_to_end_ratio,
        "cpu_ratio_workers": worker_ratio,
        "speedup_2_vs_1_workers": round(fleet_speedup, 3), "speedup_2_vs_1_end_to_end": round(speedup, 3),
        "speedup_2_vs_1_cpu_bound": round(cpu_bound_speedup, 3),
        "per_worker_title_cpu_s": {r.name: [round(c, 2) for c in r.per_worker_title_cpu_s] for r in chunked_runs},
        "single_pass_cpu_samples_s": [round(c, 2) for c in single.cpu_samples_s],
        "reference_cpu_s": {run.name: round(run.reference_cpu_s, 2) for run in chunked_runs},
        "worker_cpu_own_children_s": split, "worker_cpu_own_share": own_share,
        "chunk_job_ffmpeg_vs_single_per_chunk": job_vs_single,
        "fleet_wall_s": {r.name: round(r.fleet_wall_s, 2) for r in chunked_runs},
        "psnr_delta_db": delta, "psnr_delta_naive_db": naive_delta,
        "bitrate_error_pct": rate_error, "bitrate_vs_single_pct": rate_vs_single,
        "chunk_job_s": round(job_s, 3), "film_2h_minutes_by_workers": fleet, "workers_for_film_under_15_min": needed,
        # The CPU target, on the transcode phase of both chunked runs (README: why).
        "cpu_met": max(transcode_ratio[one.name], transcode_ratio[two.name]) <= 1.10,
        "cpu_end_to_end_met": max(end_to_end_ratio[one.name], end_to_end_ratio[two.name]) <= 1.10,
        "psnr_met": min(delta.values()) >= -0.3, "speedup_met": fleet_speedup >= 1.8,
        "bitrate_met": worst_rate <= 5.0, "bitrate_vs_single_met": worst_rate_vs_single <= 5.0,
        "rate_control_fixed_met": min(delta.values()) > min(naive_delta.values()),
        "fleet_projection_met": needed is not None,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    sys.exit(main())
