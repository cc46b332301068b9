"""Trace-driven chunk-level playback simulator (the Pensieve model).

Modelled on the simulator of Mao, Netravali, Alizadeh, "Neural Adaptive Video
Streaming with Pensieve", SIGCOMM 2017 (Sec. 5.1; ``sim/fixed_env.py``): chunks are
fetched one after another over a :class:`~reelstream.player.network.TraceLink`;
each request adds an 80 ms round trip; playback drains the buffer while a chunk
downloads and a stall lasts as long as the download outlives the buffer; past a 60 s
buffer the player sleeps in 500 ms steps. The first chunk is fetched at rung 1 and
its download time is the startup delay.

:func:`simulate` is a pure, deterministic function: time is the link's position in
the trace (injected through the network model), there is no wall clock and no sleep.
By default every trace starts at its beginning, as Pensieve's test environment
does; ``start_seed`` starts each at a random index drawn from a seeded generator.
"""

from __future__ import annotations

from dataclasses import dataclass

from reelstream.player.abr.interface import AbrAlgorithm, Observation
from reelstream.player.network import PAYLOAD_RATIO, TraceLink, seeded_start
from reelstream.player.traces import Trace, Video


@dataclass(frozen=True)
class SimConfig:
    """Simulator settings; the defaults are Pensieve's.

    Attributes:
        rtt_s: round trip added to every chunk request.
        buffer_cap_s: buffer beyond which the player sleeps.
        sleep_step_s: granularity of that sleep.
        first_rung: rung of the first chunk, or None to ask the algorithm.
        start_seed: None to start each trace at its beginning, else the seed of a
            per-trace random start index.
        payload_ratio: share of the trace bandwidth that carries chunk bytes.
    """

    rtt_s: float = 0.08
    buffer_cap_s: float = 60.0
    sleep_step_s: float = 0.5
    first_rung: int | None = 1
    start_seed: int | None = None
    payload_ratio: float = PAYLOAD_RATIO


@dataclass(frozen=True)
class ChunkRecord:
    """What happened to one chunk.

    ``buffer_s`` is the level after the chunk landed and any sleep; ``stall_s`` for
    the first chunk is the startup delay, not a rebuffer.
    """

    index: int
    rung: int
    size_bytes: int
    download_s: float
    stall_s: float
    sleep_s: float
    buffer_s: float


@dataclass(frozen=True)
class Session:
    """One simulated playback of a title over a trace."""

    trace: str
    algorithm: str
    chunks: tuple[ChunkRecord, ...]

    @property
    def startup_s(self) -> float:
        """Time to the first frame: the first chunk's download."""
        return self.chunks[0].download_s


def _observation(video: Video, history: list[ChunkRecord], buffer_s: float) -> Observation:
    """The player's view before fetching chunk ``len(history)``."""
    nxt = len(history)
    return Observation(
        throughputs_kbps=tuple(r.size_bytes * 8 / 1000 / r.download_s for r in history),
        download_times_s=tuple(r.download_s for r in history),
        buffer_s=buffer_s,
        last_rung=history[-1].rung if history else None,
        upcoming_sizes_bytes=video.sizes[nxt:],
        chunks_remaining=video.chunks - nxt,
        chunk_duration_s=video.chunk_s,
        bitrates_kbps=video.bitrates_kbps,
    )


def _sleep_for(buffer_s: float, config: SimConfig) -> float:
    """Sleep that brings the buffer back under the cap, in whole steps."""
    excess = buffer_s - config.buffer_cap_s
    if excess <= 0.0:
        return 0.0
    steps = -(-excess // config.sleep_step_s)  # ceil without float drift from math.ceil(x/y)
    return steps * config.sleep_step_s


def _pick(algorithm: AbrAlgorithm, obs: Observation, config: SimConfig) -> int:
    if obs.last_rung is None and config.first_rung is not None:
        return config.first_rung
    rung = algorithm.choose(obs)
    if not 0 <= rung < obs.rungs:
        raise ValueError(f"{algorithm.name} chose rung {rung}, outside 0..{obs.rungs - 1}")
    return rung


def simulate(trace: Trace, video: Video, algorithm: AbrAlgorithm,
             config: SimConfig = SimConfig()) -> Session:
    """Play ``video`` over ``trace`` with ``algorithm``; deterministic."""
    start = 1 if config.start_seed is None else seeded_start(trace, config.start_seed)
    link = TraceLink(trace, start_index=start, payload_ratio=config.payload_ratio)
    history: list[ChunkRecord] = []
    buffer_s = 0.0
    for index in range(video.chunks):
        rung = _pick(algorithm, _observation(video, history, buffer_s), config)
        size = video.sizes[index][rung]
        download = link.transfer(size) + config.rtt_s
        stall = max(download - buffer_s, 0.0)
        buffer_s = max(buffer_s - download, 0.0) + video.chunk_s
        sleep = _sleep_for(buffer_s, config)
        if sleep:
            buffer_s -= sleep
            link.idle(sleep)
        history.append(ChunkRecord(index, rung, size, download, stall, sleep, buffer_s))
    return Session(trace=trace.name, algorithm=algorithm.name, chunks=tuple(history))
