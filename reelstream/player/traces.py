"""Load ABR reference data: network traces and per-rung chunk sizes.

The data (see ``shared/abr/README.md``) lives outside the repository. Its directory
is ``$REEL_ABR_DATA`` when set, else ``<repo>/../shared/abr``. Trace files hold one
``time_s throughput_mbps`` sample per line, whitespace separated (the HSDPA files
have CRLF endings, which ``str.split`` absorbs). Chunk-size files ``video_size_<r>``
hold one byte count per line, chunk 1 first, ``_0`` the lowest rung.

This module is the I/O shell around the pure simulator; nothing here decides.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from reelstream.errors import ReelStreamError

DATA_ENV = "REEL_ABR_DATA"
REPO_ROOT = Path(__file__).resolve().parents[2]


class AbrDataMissing(ReelStreamError):
    """The ABR traces or chunk-size files are not where they were looked for."""


class AbrDataInvalid(ReelStreamError):
    """A trace or chunk-size file exists but cannot be parsed or is too short."""


@dataclass(frozen=True)
class Trace:
    """A throughput trace: ``mbps[i]`` applies between ``times_s[i-1]`` and ``times_s[i]``."""

    name: str
    times_s: tuple[float, ...]
    mbps: tuple[float, ...]


@dataclass(frozen=True)
class Video:
    """A title's ladder: ``sizes[chunk][rung]`` bytes, ``bitrates_kbps`` ascending."""

    bitrates_kbps: tuple[float, ...]
    chunk_s: float
    sizes: tuple[tuple[int, ...], ...]

    @property
    def chunks(self) -> int:
        """Number of chunks in the title."""
        return len(self.sizes)


# Pensieve's ladder for the EnvivioDash3 title (Mao et al. 2017, Sec. 5.1).
PENSIEVE_BITRATES_KBPS = (300.0, 750.0, 1200.0, 1850.0, 2850.0, 4300.0)
PENSIEVE_CHUNK_S = 4.0
PENSIEVE_CHUNKS = 48


def data_dir() -> Path:
    """Directory of the ABR data: ``$REEL_ABR_DATA`` or ``<repo>/../shared/abr``."""
    configured = os.environ.get(DATA_ENV)
    path = Path(configured) if configured else REPO_ROOT.parent / "shared" / "abr"
    if not path.is_dir():
        how = f"${DATA_ENV}={configured}" if configured else f"the default {path}"
        raise AbrDataMissing(
            f"ABR data directory not found ({how}); set {DATA_ENV} to the folder holding "
            "traces/ and video_sizes/ (see shared/abr/README.md)")
    return path


def parse_trace(name: str, text: str) -> Trace:
    """Parse a trace file's text; blank lines are skipped, bad lines are errors.

    Times must not go backwards and rates must be finite and not negative: the link
    model sends a chunk by summing rate x span, which such a sample makes endless."""
    times: list[float] = []
    rates: list[float] = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        try:
            time_s, mbps = float(fields[0]), float(fields[1])
        except (IndexError, ValueError) as e:
            raise AbrDataInvalid(f"trace {name}, line {number}: expected 'time_s mbps'") from e
        if not (math.isfinite(time_s) and math.isfinite(mbps)) or mbps < 0:
            raise AbrDataInvalid(f"trace {name}, line {number}: time and throughput must be finite numbers, "
                                 f"the throughput not negative (got {fields[0]} {fields[1]})")
        if times and time_s < times[-1]:
            raise AbrDataInvalid(f"trace {name}, line {number}: time {fields[0]} is before the previous "
                                 f"line's {times[-1]:g}")
        times.append(time_s)
        rates.append(mbps)
    if len(times) < 2:
        raise AbrDataInvalid(f"trace {name}: needs at least two samples")
    return Trace(name=name, times_s=tuple(times), mbps=tuple(rates))


# An FCC file is one window of a longer measurement, named by the window's start offset
# (``test_fcc_trace_<unit>_<site>_<offset>``); windows of one measurement overlap.
_FCC_WINDOW = re.compile(r"^(test_fcc_trace_\d+_.+)_\d+$")


def recording_of(name: str) -> str:
    """The recording a trace file was cut from: its FCC measurement, else the file itself.

    Two windows of one FCC measurement share most of their samples (60 % of what the
    held-out sessions of a by-file split play occurs in the other half's files), so a
    hold-out that keeps data apart has to split by recording, not by file.
    """
    match = _FCC_WINDOW.match(name)
    return match.group(1) if match else name


def load_traces(folder: Path) -> list[Trace]:
    """All traces in ``folder``, sorted by file name (the order the bench splits on)."""
    if not folder.is_dir():
        raise AbrDataMissing(f"trace folder not found: {folder}")
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    if not files:
        raise AbrDataMissing(f"no trace files in {folder}")
    return [parse_trace(p.name, _text(p)) for p in files]


def _text(path: Path) -> str:
    try:
        return path.read_text()
    except UnicodeDecodeError as e:
        raise AbrDataInvalid(f"trace {path}: not a text file of 'time_s mbps' lines ({e.reason})") from e


def load_video(folder: Path, bitrates_kbps: Sequence[float] = PENSIEVE_BITRATES_KBPS,
               chunk_s: float = PENSIEVE_CHUNK_S, chunks: int = PENSIEVE_CHUNKS) -> Video:
    """Read ``video_size_0..`` from ``folder`` (or its ``video_sizes/`` child)."""
    if not (folder / "video_size_0").exists() and (folder / "video_sizes").is_dir():
        folder = folder / "video_sizes"
    per_rung = []
    for rung in range(len(bitrates_kbps)):
        path = folder / f"video_size_{rung}"
        if not path.is_file():
            raise AbrDataMissing(f"chunk-size file missing: {path}")
        try:
            sizes = [int(v) for v in path.read_text().split()]
        except ValueError as e:
            raise AbrDataInvalid(f"{path}: every line must be a byte count") from e
        if len(sizes) < chunks:
            raise AbrDataInvalid(f"{path}: {len(sizes)} chunks, need {chunks}")
        per_rung.append(sizes[:chunks])
    by_chunk = tuple(tuple(per_rung[r][c] for r in range(len(per_rung))) for c in range(chunks))
    return Video(bitrates_kbps=tuple(bitrates_kbps), chunk_s=chunk_s, sizes=by_chunk)
