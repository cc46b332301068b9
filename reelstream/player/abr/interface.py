"""The one interface every ABR algorithm implements: an observation in, a rung out.

The same ABR class must be drivable by any chunk-level simulator (and, later, by the
real player): an algorithm sees only what a player can measure or read from the
manifest, never the network trace behind it. Everything an algorithm needs is in one
immutable :class:`Observation`, and :meth:`AbrAlgorithm.choose` is a pure function of
it: no I/O, no clock, no state carried between calls. Algorithms that need memory
(RobustMPC's past prediction errors, for instance) recompute it from the history in
the observation, so replaying the same observation always gives the same rung.

Units: throughput in kbit/s, times and buffer levels in seconds, sizes in bytes,
bitrates in kbit/s. Rungs are indexed from 0 (lowest bitrate) upwards.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Observation:
    """What the player knows when it must pick the rung of the next chunk.

    Attributes:
        throughputs_kbps: measured throughput of each chunk downloaded so far,
            oldest first: chunk bits divided by its download time (request
            round trip included, as a player measures it).
        download_times_s: download time of each of those chunks, same order.
        buffer_s: seconds of video buffered ahead of the playhead now.
        last_rung: rung of the previous chunk, or ``None`` before the first one.
        upcoming_sizes_bytes: sizes of the chunks still to fetch, next chunk first;
            ``upcoming_sizes_bytes[k][rung]``. Holds at least the next chunk; an
            algorithm that looks further than given estimates sizes from
            ``bitrates_kbps`` (see :func:`chunk_size_bytes`).
        chunks_remaining: chunks still to download, the one being decided included.
        chunk_duration_s: playback seconds per chunk.
        bitrates_kbps: nominal bitrate of every rung, ascending.
    """

    throughputs_kbps: Sequence[float]
    download_times_s: Sequence[float]
    buffer_s: float
    last_rung: int | None
    upcoming_sizes_bytes: Sequence[Sequence[int]]
    chunks_remaining: int
    chunk_duration_s: float
    bitrates_kbps: Sequence[float]

    def __post_init__(self) -> None:
        if len(self.throughputs_kbps) != len(self.download_times_s):
            raise ValueError("throughputs_kbps and download_times_s must have equal length")
        if not self.upcoming_sizes_bytes:
            raise ValueError("upcoming_sizes_bytes must hold at least the next chunk")
        if self.chunks_remaining < 1:
            raise ValueError("chunks_remaining counts the chunk being decided, so it is >= 1")
        if any(len(row) != len(self.bitrates_kbps) for row in self.upcoming_sizes_bytes):
            raise ValueError("every upcoming_sizes_bytes row needs one size per rung")

    @property
    def rungs(self) -> int:
        """How many rungs the ladder has."""
        return len(self.bitrates_kbps)

    @property
    def top_rung(self) -> int:
        """Index of the highest rung."""
        return len(self.bitrates_kbps) - 1


class AbrAlgorithm(ABC):
    """An adaptive-bitrate policy: ``choose(observation) -> rung index``.

    Implementations hold only configuration; :meth:`choose` must be pure and must
    return an index in ``range(observation.rungs)``.
    """

    name: str = "abr"

    @abstractmethod
    def choose(self, obs: Observation) -> int:
        """Return the rung (0 = lowest) to fetch the next chunk at."""


def chunk_size_bytes(obs: Observation, ahead: int, rung: int) -> float:
    """Size of the chunk ``ahead`` positions from now (0 = next) at ``rung``.

    Uses the known size when the observation carries it, else the nominal
    bitrate times the chunk duration (what a player without a segment index
    would assume).
    """
    if ahead < len(obs.upcoming_sizes_bytes):
        return float(obs.upcoming_sizes_bytes[ahead][rung])
    return obs.bitrates_kbps[rung] * 1000.0 * obs.chunk_duration_s / 8.0


def highest_rung_at_most(bitrates_kbps: Sequence[float], rate_kbps: float) -> int:
    """Highest rung whose bitrate does not exceed ``rate_kbps`` (0 if none does)."""
    chosen = 0
    for rung, bitrate in enumerate(bitrates_kbps):
        if bitrate <= rate_kbps:
            chosen = rung
    return chosen
