"""Media commands: `reel ingest`, `reel worker transcode`, `reel transcode status`."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from reelstream.cli._argtypes import at_least
from reelstream.cli._records import Horizon, decoded
from reelstream.cli.core import Subcommands, add_runtime_flags, settings_from
from reelstream.events.model import Event
from reelstream.ingest.upload import TransferMeter
from reelstream.media.reading import Reading, reading
from reelstream.runtime import Runtime


class CliProgress:
    """Hashing, then upload bytes, rate and ETA per file, then the ingest's steps; a step still
    running after ``tick_s`` (validating a feature-length master reads all of it) says so with
    its time so far, every ``tick_s``, until the next step or ``close``, and, for a step that
    reads a file (``step(..., reading=path)``), how far into it the media command has read, its
    rate and ETA. On a terminal a file's line is rewritten in place; in a log (not a terminal) a
    new line comes every ``tick_s`` and at the end: 100 GB hashed at 0.2-s updates was one line of
    thousands of carriage returns."""

    def __init__(self, quiet: bool = False, clock: Callable[[], float] = time.monotonic,
                 out: TextIO | None = None, tick_s: float = 15.0,
                 reader: Callable[[Path], Reading | None] = reading) -> None:
        self.quiet = quiet
        self.clock = clock
        self.out = out
        self.tick_s = tick_s
        self.reader = reader
        self._last = -float("inf")
        self._meters: dict[str, TransferMeter] = {}
        self._step_done: threading.Event | None = None

    @property
    def _stream(self) -> TextIO:
        return self.out or sys.stderr

    @property
    def _live(self) -> bool:
        isatty = getattr(self._stream, "isatty", None)
        return bool(isatty and isatty())

    def _due(self, done: int, total: int) -> bool:
        now = self.clock()
        if self.quiet or (now - self._last < (0.2 if self._live else self.tick_s) and done < total):
            return False
        self._last = now
        return True

    def _line(self, text: str, finished: bool) -> None:
        if self._live:
            print(f"\r{text}", end="\n" if finished else "", file=self._stream, flush=True)
        else:
            print(text, file=self._stream, flush=True)

    def hashing(self, name: str, done: int, total: int) -> None:
        rate, eta = self._meters.setdefault(f"hashing {name}", TransferMeter(self.clock)).update(done, total)
        if self._due(done, total):
            self._line(f"  hashing {name}: {amount(done, total)}{speed(rate, eta)}", done >= total)

    def uploading(self, name: str, done: int, total: int) -> None:
        # The rate counts the transfer alone: hashing a large master first takes minutes.
        rate, eta = self._meters.setdefault(name, TransferMeter(self.clock)).update(done, total)
        if self._due(done, total):
            self._line(f"  uploading {name}: {amount(done, total)}{speed(rate, eta)}", done >= total)

    def step(self, message: str, reading: Path | None = None) -> None:
        self.close()
        if self.quiet:
            return
        print(f"  {message}", file=self._stream, flush=True)
        done = self._step_done = threading.Event()
        threading.Thread(target=self._tick, args=(message, done, reading), name="ingest-progress", daemon=True).start()

    def close(self) -> None:
        """The current step is over (no more "still ..." lines for it)."""
        if self._step_done is not None:
            self._step_done.set()
            self._step_done = None

    def _tick(self, message: str, done: threading.Event, source: Path | None) -> None:
        started, total = self.clock(), 0
        try:
            total = source.stat().st_size if source is not None else 0
        except OSError:  # gone or unreadable: the step itself will say so; show elapsed time only
            source = None
        before: tuple[Reading, float] | None = None
        while not done.wait(self.tick_s):
            now_reading = self.reader(source) if source is not None else None
            now = self.clock()
            line = f"  ... still {message} ({now - started:.0f} s)"
            if source is not None and now_reading is not None:
                line += f": {source.name} read {amount(now_reading.position, total).strip()}"
                # A rate only across one command's read: the next command starts again from 0.
                if before is not None and (before[0].pid, before[0].fd) == (now_reading.pid, now_reading.fd) \
                        and now_reading.position >= before[0].position and now > before[1]:
                    rate = (now_reading.position - before[0].position) / (now - before[1])
                    if rate > 0:
                        line += f", {rate / 1e6:.1f} MB/s, ETA {eta_text((total - now_reading.position) / rate).strip()}"
                before = (now_reading, now)
            print(line, file=self._stream, flush=True)


def amount(done: int, total: int) -> str:
    """Bytes done of total, in GB from 10 GB (a feature master's 107374.2 MB reads poorly)."""
    if total >= 10e9:
        return f"{done / 1e9:6.1f} / {total / 1e9:.1f} GB"
    return f"{done / 1e6:8.1f} / {total / 1e6:.1f} MB"


def speed(rate: float, eta: float) -> str:
    """Rate and ETA, once there is a rate: a file hashed in one block, or a transfer's first
    report, has none (it read "0.0 MB/s  ETA 0s")."""
    return f"  {rate / 1e6:6.1f} MB/s  ETA {eta_text(eta)}" if rate > 0 else ""


def eta_text(seconds: float) -> str:
    """Seconds under 100, then minutes and seconds, then hours and minutes."""
    if seconds < 100:
        return f"{seconds:4.0f}s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def cmd_ingest(args: argparse.Namespace) -> int:
    from reelstream.ingest.service import IngestService
    from reelstream.media.transcode.ladder import DEFAULT_LADDER, load_ladder

    runtime = Runtime(settings_from(args))
    ladder = load_ladder(args.ladder) if args.ladder else DEFAULT_LADDER
    progress = CliProgress(args.quiet)
    service = IngestService(runtime, ladder, progress, calibrate_rate=not args.no_calibrate)
    try:
        result = service.ingest(args.master, args.metadata)
    except BaseException:
        # Closing flushes what the ingest published, and opens no log it never opened (with
        # the broker down, that error would hide the ingest's own).
        runtime.close()
        raise
    finally:
        progress.close()
    runtime.log.flush()
    print(f"{result.title_id}: validated; {len(result.renditions)} renditions "
          f"({', '.join(result.renditions)}), {result.chunk_count} chunks each, {result.jobs} jobs queued")
    if args.follow:
        return follow(runtime, result.title_id, timeout=args.timeout)
    runtime.close()
    return 0


@dataclass
class IngestWatch:
    """What `reel ingest --follow` knows of one title, per ingest attempt (the correlation id
    an ingest's events share, the results of its jobs included): its plan, the chunks done
    per rendition, and how it ended. Events of both topics may come in any order."""

    title_id: str
    plans: dict[str, dict[str, Any]] = field(default_factory=dict)  # in catalog order: the last is the latest
    done: dict[str, dict[str, set[int]]] = field(default_factory=dict)
    ended: dict[str, Event] = field(default_factory=dict)

    def apply(self, event: Event) -> None:
        if event.data.get("title_id") != self.title_id:
            return
        attempt = event.header.correlation_id
        if event.type == "TranscodePlanned":
            self.plans.pop(attempt, None)
            self.plans[attempt] = dict(event.data)
        elif event.type == "ChunkTranscoded":
            for out in event["outputs"]:
                self.done.setdefault(attempt, {}).setdefault(out["rendition_id"], set()).add(event["chunk_index"])
        elif event.type in ("TitleTranscoded", "TitleTranscodeFailed"):
            self.ended.setdefault(attempt, event)

    @property
    def latest(self) -> str | None:
        return next(reversed(self.plans), None)

    def progress(self, attempt: str, elapsed: float) -> str:
        plan, done = self.plans[attempt], self.done.get(attempt, {})
        total = plan["chunk_count"] * len(plan["renditions"])
        finished = sum(len(v) for v in done.values())
        eta = elapsed / finished * (total - finished) if finished else 0
        rungs = "  ".join(f"{r['rendition_id']} {len(done.get(r['rendition_id'], ()))}/{plan['chunk_count']}"
                          for r in plan["renditions"])
        return f"  {rungs}  ETA {eta:4.0f}s"


def follow(runtime: Runtime, title_id: str, timeout: float) -> int:
    """Chunks done per rung and an ETA, from the results topic, until the title is transcoded or failed.

    Only this ingest counts: the plan it follows is the title's latest in reel.catalog when it
    starts (the ingest has just published it), and only events of that plan's ingest are read
    into it. An earlier ingest's TitleTranscodeFailed, or a straggling result of it, is not
    this one's."""
    horizon = Horizon.now(runtime.log, ["reel.catalog"])
    reader = runtime.log.consumer(["reel.catalog", "reel.transcode.results"], group_id=None)
    watch = IngestWatch(title_id)
    attempt: str | None = None
    started, deadline = time.monotonic(), time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            records = reader.poll(timeout=1.0)
            horizon.advance(records)
            if not records and attempt is None:
                horizon.skip_emptied(runtime.log)
            for event in decoded(runtime.codec, records, "ingest"):
                watch.apply(event)
            if attempt is None:
                if not horizon.reached:
                    continue  # a later plan of this title may still be ahead
                attempt = watch.latest
                if attempt is None:
                    print(f"\n{title_id}: no TranscodePlanned in reel.catalog to follow", file=sys.stderr)
                    return 1
            ended = watch.ended.get(attempt)
            if ended is not None and ended.type == "TitleTranscoded":
                print(f"\n{title_id}: transcoded; ready for packaging")
                return 0
            if ended is not None:
                print(f"\n{title_id}: FAILED: {ended['job_id']}: {ended['reason']}", file=sys.stderr)
                return 1
            print(f"\r{watch.progress(attempt, time.monotonic() - started)}", end="", file=sys.stderr, flush=True)
    finally:
        reader.close()
    print(f"\n{title_id}: not finished after {timeout:.0f}s (are workers running? `reel worker transcode`)",
          file=sys.stderr)
    return 1


def cmd_worker(args: argparse.Namespace) -> int:
    from reelstream.workers.capabilities import detect
    from reelstream.workers.pool import default_processes, stop_pool, supervise, worker_starter
    from reelstream.workers.transcode import TranscodeWorker

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    processes = args.processes or default_processes()
    if processes > 1:
        start = worker_starter(processes, args.threads, args.capabilities, args.idle_exit, extra=_runtime_args(args))
        procs = [start(i) for i in range(processes)]
        print(f"{processes} transcode workers running (pids {', '.join(str(p.pid) for p in procs)}); Ctrl-C stops",
              flush=True)
        try:
            supervise(procs, start, stop.is_set)
        finally:
            stop_pool(procs)
        return 0
    runtime = Runtime(settings_from(args))
    caps = detect(None if args.capabilities == "auto" else args.capabilities)
    worker = TranscodeWorker(runtime, capabilities=caps, threads=args.threads)
    print(f"worker {worker.worker_id} ({caps.label}) taking jobs from {runtime.settings.log_url}", flush=True)
    stats = worker.run(stop.is_set, idle_exit_s=args.idle_exit)
    print(f"worker {worker.worker_id} stopped: {stats}", flush=True)
    runtime.close()
    return 0


def _runtime_args(args: argparse.Namespace) -> list[str]:
    out = []
    if args.config:
        out += ["--config", str(args.config)]
    if args.data_dir:
        out += ["--data-dir", str(args.data_dir)]
    out += [flag for flag, on in (("--kafka", args.kafka), ("--cassandra", args.cassandra), ("--s3", args.s3)) if on]
    return out


def cmd_status(args: argparse.Namespace) -> int:
    from reelstream.processors.transcode.completion import TRANSCODE_TITLES

    runtime = Runtime(settings_from(args))
    row = runtime.state.get(TRANSCODE_TITLES, (args.title_id,))
    if row is None:
        print(f"reel transcode status: no transcode known for {args.title_id!r}", file=sys.stderr)
        return 2
    print(json.dumps(row.values, indent=2, default=str))
    return 0


def register(sub: Subcommands) -> None:
    ingest = sub.add_parser("ingest", help="upload a master with its metadata, validate it, queue its transcode")
    add_runtime_flags(ingest)
    ingest.add_argument("master", type=Path, help="the studio master (any container ffmpeg reads)")
    ingest.add_argument("--metadata", type=Path, required=True,
                        help="title.json: title, languages, rating, license terms, master sha256, sidecars")
    ingest.add_argument("--ladder", type=Path, help="JSON ladder (default: 10 rungs, 240p/400k .. 2160p HDR/15M)")
    ingest.add_argument("--no-calibrate", action="store_true",
                        help="plain per-chunk ABR instead of per-title calibrated capped CRF")
    ingest.add_argument("--follow", action="store_true", help="then show chunks done per rung until complete")
    ingest.add_argument("--timeout", type=float, default=3600.0, help="seconds --follow waits")
    ingest.add_argument("--quiet", action="store_true", help="no progress output")
    ingest.set_defaults(fn=cmd_ingest)

    worker = sub.add_parser("worker", help="run a worker of a fleet")
    kinds = worker.add_subparsers(dest="kind", required=True)
    transcode = kinds.add_parser("transcode", help="encode chunk and audio jobs from reel.transcode.jobs")
    add_runtime_flags(transcode)
    transcode.add_argument("--processes", type=at_least(0), default=1,
                           help="local worker processes (0: one per core); each joins the same consumer group")
    transcode.add_argument("--threads", type=at_least(0), default=0, help="ffmpeg threads per worker (0: ffmpeg's default)")
    transcode.add_argument("--capabilities", choices=("auto", "cpu", "gpu"), default="auto",
                           help="detect NVENC at start (auto) or force it")
    transcode.add_argument("--idle-exit", type=float, help="exit after this many seconds without a job")
    transcode.set_defaults(fn=cmd_worker)

    status = sub.add_parser("transcode", help="transcode status of a title")
    add_runtime_flags(status)
    status.add_argument("title_id")
    status.set_defaults(fn=cmd_status)
