"""Hand-built observations for the ABR tests (Pensieve's ladder, 4-s chunks)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from reelstream.player.abr import Observation

LADDER = (300.0, 750.0, 1200.0, 1850.0, 2850.0, 4300.0)
CHUNK_S = 4.0


def nominal_sizes(chunks: int) -> tuple[tuple[int, ...], ...]:
    """Constant-bitrate chunk sizes: bitrate * 4 s."""
    row = tuple(int(rate * 1000 * CHUNK_S / 8) for rate in LADDER)
    return tuple(row for _ in range(chunks))


def make_observation(throughputs_kbps: Sequence[float] = (), buffer_s: float = 0.0,
                     last_rung: int | None = None, chunks_remaining: int = 40) -> Observation:
    """An observation whose history downloaded ``last_rung``-sized chunks."""
    rung = 1 if last_rung is None else last_rung
    bits = LADDER[rung] * CHUNK_S * 1000
    return Observation(
        throughputs_kbps=tuple(throughputs_kbps),
        download_times_s=tuple(bits / 1000 / t for t in throughputs_kbps),
        buffer_s=buffer_s,
        last_rung=last_rung,
        upcoming_sizes_bytes=nominal_sizes(chunks_remaining),
        chunks_remaining=chunks_remaining,
        chunk_duration_s=CHUNK_S,
        bitrates_kbps=LADDER,
    )


@pytest.fixture
def obs() -> Callable[..., Observation]:
    """Factory for observations (see :func:`make_observation`)."""
    return make_observation
