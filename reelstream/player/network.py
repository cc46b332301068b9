"""Trace-driven network model of the Pensieve simulator (Mao et al., SIGCOMM 2017).

Mirrors ``sim/fixed_env.py`` of hongzimao/pensieve so results compare with that
literature: the bandwidth on trace line i applies between the timestamps of lines
i-1 and i; only ``payload_ratio`` (95 %) of it carries chunk bytes (packet headers);
the trace loops when it runs out. The model *is* the simulator's clock: its only
notion of time is the position in the trace, so nothing here reads a wall clock.

Two Pensieve quirks are kept on purpose, for comparability: the per-request round
trip is added to the download time by the simulator but does not advance the trace,
and on wrap-around the clock restarts at t = 0 (not at the first timestamp).
"""

from __future__ import annotations

import random

from reelstream.player.traces import AbrDataInvalid, Trace

PAYLOAD_RATIO = 0.95
BYTES_PER_MBIT = 1_000_000 / 8


class TraceLink:
    """A link whose capacity follows a trace; advancing it is advancing time."""

    def __init__(self, trace: Trace, start_index: int = 1,
                 payload_ratio: float = PAYLOAD_RATIO) -> None:
        if not any(rate > 0.0 for rate in trace.mbps[1:]):
            raise AbrDataInvalid(f"trace {trace.name}: no positive bandwidth, a download never ends")
        if not 1 <= start_index < len(trace.times_s):
            raise ValueError(f"start_index must be in [1, {len(trace.times_s)})")
        self.trace = trace
        self.payload_ratio = payload_ratio
        self._ptr = start_index
        self._now = trace.times_s[start_index - 1]

    @property
    def now_s(self) -> float:
        """Position of the link clock in trace time."""
        return self._now

    def _bytes_per_s(self) -> float:
        return self.trace.mbps[self._ptr] * BYTES_PER_MBIT

    def _next_sample(self) -> None:
        self._now = self.trace.times_s[self._ptr]
        self._ptr += 1
        if self._ptr >= len(self.trace.mbps):
            self._ptr = 1
            self._now = 0.0  # Pensieve restarts the looped trace at t = 0

    def transfer(self, size_bytes: float) -> float:
        """Send ``size_bytes`` from now; return seconds taken (no round trip)."""
        sent, elapsed = 0.0, 0.0
        while True:
            rate = self._bytes_per_s()
            span = self.trace.times_s[self._ptr] - self._now
            payload = rate * span * self.payload_ratio
            if sent + payload > size_bytes:
                fraction = (size_bytes - sent) / rate / self.payload_ratio
                self._now += fraction
                return elapsed + fraction
            sent += payload
            elapsed += span
            self._next_sample()

    def idle(self, seconds: float) -> None:
        """Let ``seconds`` pass without sending (the player sleeping on a full buffer)."""
        remaining = seconds
        while True:
            span = self.trace.times_s[self._ptr] - self._now
            if span > remaining:
                self._now += remaining
                return
            remaining -= span
            self._next_sample()


def seeded_start(trace: Trace, seed: int) -> int:
    """A random but reproducible start index for ``trace`` (Pensieve's training env)."""
    return random.Random(f"{seed}:{trace.name}").randrange(1, len(trace.times_s))
