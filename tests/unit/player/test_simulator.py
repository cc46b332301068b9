"""The Pensieve-model simulator: exact download times, stalls, the buffer cap."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from reelstream.player.abr import (
    AbrAlgorithm,
    AlwaysLowest,
    Observation,
    ReelStreamMpc,
    ReelStreamTuning,
    RobustMpc,
)
from reelstream.player.network import TraceLink
from reelstream.player.qoe import measure
from reelstream.player.simulator import SimConfig, simulate
from reelstream.player.traces import AbrDataInvalid, Trace, Video

LADDER = (300.0, 750.0, 1200.0, 1850.0, 2850.0, 4300.0)


class Fixed(AbrAlgorithm):
    """Always the same rung."""

    def __init__(self, rung: int) -> None:
        self.rung = rung
        self.name = f"Fixed{rung}"

    def choose(self, obs: Observation) -> int:
        return self.rung


def constant_trace(mbps: float, seconds: int = 2000) -> Trace:
    return Trace("const", tuple(float(t) for t in range(seconds + 1)), (mbps,) * (seconds + 1))


def video(chunks: int = 48) -> Video:
    row = tuple(int(rate * 1000 * 4 / 8) for rate in LADDER)
    return Video(bitrates_kbps=LADDER, chunk_s=4.0, sizes=(row,) * chunks)


def test_constant_bandwidth_gives_exact_download_times_and_no_rebuffer() -> None:
    session = simulate(constant_trace(8.0), video(), Fixed(3))
    payload_bytes_per_s = 8.0 * 1e6 / 8 * 0.95
    for chunk in session.chunks:
        expected = chunk.size_bytes / payload_bytes_per_s + 0.08
        assert chunk.download_s == pytest.approx(expected, rel=1e-12)
    assert session.chunks[0].rung == 1  # Pensieve's default first rung
    assert all(c.rung == 3 for c in session.chunks[1:])
    assert all(c.stall_s == 0.0 for c in session.chunks[1:])
    assert session.startup_s == pytest.approx(375_000 / payload_bytes_per_s + 0.08)


def test_stall_is_download_time_beyond_the_buffer() -> None:
    # 1 Mbit/s, top rung: each 2.15 MB chunk takes 2.15e6 / (125e3 * .95) + .08 s.
    session = simulate(constant_trace(1.0), video(3), Fixed(5))
    first, second, third = session.chunks
    top_dl = 2_150_000 / (1e6 / 8 * 0.95) + 0.08
    assert second.download_s == pytest.approx(top_dl)
    assert first.buffer_s == pytest.approx(4.0)  # the buffer holds just the first chunk
    assert second.stall_s == pytest.approx(top_dl - 4.0)
    assert second.buffer_s == pytest.approx(4.0)
    assert third.stall_s == pytest.approx(top_dl - 4.0)
    metrics = measure(session, LADDER, 4.0)
    assert metrics.stall_s == pytest.approx(2 * (top_dl - 4.0))
    assert metrics.rebuffer_ratio == pytest.approx(metrics.stall_s / (metrics.stall_s + 8.0))


def test_buffer_cap_makes_the_player_sleep_in_half_second_steps() -> None:
    session = simulate(constant_trace(50.0), video(), AlwaysLowest())
    assert max(c.buffer_s for c in session.chunks) <= 60.0
    sleeps = [c.sleep_s for c in session.chunks if c.sleep_s > 0]
    assert sleeps, "a fast link must fill the 60 s buffer"
    for chunk in session.chunks:
        assert (chunk.sleep_s / 0.5) == pytest.approx(round(chunk.sleep_s / 0.5))
        if chunk.sleep_s:
            assert 59.5 < chunk.buffer_s <= 60.0


def test_sleep_advances_the_trace_clock() -> None:
    # 50 Mbit/s for 100 s, then 0.5 Mbit/s: sleeping moves later chunks onto the slow part.
    times = tuple(float(t) for t in range(400))
    rates = tuple(50.0 if t <= 100 else 0.5 for t in range(400))
    session = simulate(Trace("step", times, rates), video(), AlwaysLowest())
    assert any(c.sleep_s > 0 for c in session.chunks)
    assert session.chunks[-1].download_s > 1.0  # 150 kB at 0.5 Mbit/s is ~2.5 s


def test_line_i_bandwidth_applies_between_timestamps_i_minus_1_and_i() -> None:
    link = TraceLink(Trace("steps", (0.0, 1.0, 2.0), (99.0, 8.0, 1.0)))
    # The first second runs at line 1's 8 Mbit/s (line 0's rate is never used).
    assert link.transfer(0.5 * 8e6 / 8 * 0.95) == pytest.approx(0.5)
    assert link.transfer(0.5 * 8e6 / 8 * 0.95 + 1e6 / 8 * 0.95 * 0.5) == pytest.approx(1.0)


def test_trace_loops_from_time_zero() -> None:
    link = TraceLink(Trace("short", (0.0, 1.0, 2.0), (0.0, 8.0, 8.0)))
    one_second = 8e6 / 8 * 0.95
    assert link.transfer(5 * one_second) == pytest.approx(5.0)


def test_a_trace_without_bandwidth_is_rejected() -> None:
    with pytest.raises(AbrDataInvalid):
        TraceLink(Trace("dead", (0.0, 1.0, 2.0), (5.0, 0.0, 0.0)))


def test_simulation_is_deterministic_and_seeded_start_is_reproducible() -> None:
    times = tuple(float(t) for t in range(300))
    rates = tuple(0.5 + (t * 7919 % 13) / 3 for t in range(300))
    trace = Trace("jagged", times, rates)
    algo = ReelStreamMpc()
    assert simulate(trace, video(), algo) == simulate(trace, video(), algo)
    seeded = SimConfig(start_seed=7)
    assert simulate(trace, video(), algo, seeded) == simulate(trace, video(), algo, seeded)
    assert simulate(trace, video(), algo, seeded) != simulate(trace, video(), algo)


def test_first_rung_can_be_left_to_the_algorithm() -> None:
    session = simulate(constant_trace(8.0), video(), AlwaysLowest(), SimConfig(first_rung=None))
    assert session.chunks[0].rung == 0


def test_out_of_range_rung_is_an_error() -> None:
    with pytest.raises(ValueError):
        simulate(constant_trace(8.0), video(), Fixed(6))


def collapse_trace(before_mbps: float, after_mbps: float, at_s: int) -> Trace:
    times = tuple(float(t) for t in range(400))
    return Trace("collapse", times, tuple(before_mbps if t <= at_s else after_mbps for t in times))


def total_stall(trace: Trace, algorithm: AbrAlgorithm) -> float:
    return measure(simulate(trace, video(), algorithm), LADDER, 4.0).stall_s


@pytest.mark.parametrize("before_mbps", [3.5, 6.0])
def test_default_rides_out_a_collapse_to_the_insured_rate_at_any_moment(
        before_mbps: float) -> None:
    """A 4.7-8x collapse to 0.75 Mbit/s (712 kbit/s of payload, above the 700 kbit/s
    the upper rungs are insured against) never stalls ReelStreamMPC, wherever in the
    session it strikes; the same planner without the insurance, and RobustMPC,
    stall on some of these."""
    uninsured = ReelStreamMpc(replace(ReelStreamTuning(), collapse_kbps=None))
    stalls = {"insured": 0.0, "uninsured": 0.0, "robust": 0.0}
    for at_s in range(4, 190, 6):
        trace = collapse_trace(before_mbps, 0.75, at_s)
        assert total_stall(trace, ReelStreamMpc()) == 0.0, f"collapse at {at_s} s"
        stalls["uninsured"] += total_stall(trace, uninsured)
        stalls["robust"] += total_stall(trace, RobustMpc())
    assert stalls["uninsured"] > 1.0
    assert stalls["robust"] > 1.0


def pensieve_fixed_env(trace: Trace, sizes: list[list[int]], rungs: list[int]) -> list[tuple[float, ...]]:
    """``get_video_chunk`` of hongzimao/pensieve ``sim/fixed_env.py``, transcribed
    (milliseconds, its loop and its constants), as the reference for the simulator.

    Returns (delay_ms, rebuf_ms, buffer_ms, sleep_ms) per chunk.
    """
    cooked_time, cooked_bw = trace.times_s, trace.mbps
    ptr, last_time, buffer_size, out = 1, cooked_time[0], 0.0, []
    for index, quality in enumerate(rungs):
        chunk_size, sent, delay = sizes[index][quality], 0.0, 0.0
        while True:
            throughput = cooked_bw[ptr] * 1_000_000 / 8.0
            duration = cooked_time[ptr] - last_time
            payload = throughput * duration * 0.95
            if sent + payload > chunk_size:
                fractional = (chunk_size - sent) / throughput / 0.95
                delay += fractional
                last_time += fractional
                break
            sent += payload
            delay += duration
            last_time = cooked_time[ptr]
            ptr += 1
            if ptr >= len(cooked_bw):
                ptr, last_time = 1, 0.0
        delay = delay * 1000.0 + 80
        rebuf = max(delay - buffer_size, 0.0)
        buffer_size = max(buffer_size - delay, 0.0) + 4000.0
        sleep_time = 0.0
        if buffer_size > 60_000.0:
            sleep_time = math.ceil((buffer_size - 60_000.0) / 500.0) * 500.0
            buffer_size -= sleep_time
            remaining = sleep_time
            while True:
                duration = cooked_time[ptr] - last_time
                if duration > remaining / 1000.0:
                    last_time += remaining / 1000.0
                    break
                remaining -= duration * 1000.0
                last_time = cooked_time[ptr]
                ptr += 1
                if ptr >= len(cooked_bw):
                    ptr, last_time = 1, 0.0
        out.append((delay, rebuf, buffer_size, sleep_time))
    return out


class Pattern(AbrAlgorithm):
    """A fixed rung sequence, so both simulators fetch the same chunks."""

    name = "Pattern"

    def __init__(self, rungs: list[int]) -> None:
        self.rungs = rungs

    def choose(self, obs: Observation) -> int:
        return self.rungs[len(obs.throughputs_kbps)]


@pytest.mark.parametrize("scale", [0.6, 3.0, 40.0])
def test_simulator_matches_pensieve_fixed_env_chunk_by_chunk(scale: float) -> None:
    """A jagged 0.1-s-to-2-s trace that wraps around (scale 0.6: stalls; 40: sleeps on a
    full buffer), varying chunk sizes and a rung pattern: every download, stall,
    buffer level and sleep equals the transcribed Pensieve loop's."""
    times, t = [0.0], 0.0
    for i in range(1, 120):
        t += 0.1 + (i * 37 % 19) / 10
        times.append(round(t, 3))
    rates = tuple(scale * (0.2 + (i * 7919 % 23) / 5) for i in range(len(times)))
    trace = Trace("jagged", tuple(times), rates)
    sizes = [[int(rate * 500 * (0.7 + (c * 13 % 7) / 10)) for rate in LADDER] for c in range(48)]
    rungs = [1] + [(c * 5 + c // 7) % 6 for c in range(1, 48)]
    title = Video(bitrates_kbps=LADDER, chunk_s=4.0, sizes=tuple(tuple(row) for row in sizes))
    session = simulate(trace, title, Pattern(rungs))
    reference = pensieve_fixed_env(trace, sizes, rungs)
    assert [c.rung for c in session.chunks] == rungs
    for chunk, (delay_ms, rebuf_ms, buffer_ms, sleep_ms) in zip(session.chunks, reference):
        assert chunk.download_s * 1000 == pytest.approx(delay_ms, rel=1e-9)
        assert chunk.stall_s * 1000 == pytest.approx(rebuf_ms, rel=1e-9, abs=1e-6)
        assert chunk.buffer_s * 1000 == pytest.approx(buffer_ms, rel=1e-9, abs=1e-6)
        assert chunk.sleep_s * 1000 == pytest.approx(sleep_ms, abs=1e-6)
    if scale < 1:
        assert any(c.stall_s > 0 for c in session.chunks[1:])
    if scale > 10:
        assert any(c.sleep_s > 0 for c in session.chunks)


def test_default_insures_a_link_that_keeps_falling() -> None:
    """3 Mbit/s, then 1.5 for 6 s, then 0.45 (below the 700 kbit/s cap): the trend
    term insures the chunk after the first drop against the second one, so over 16
    moments of the fall ReelStreamMPC stalls far less than without it."""
    no_trend = ReelStreamMpc(replace(ReelStreamTuning(), collapse_trend=0.0))
    times = tuple(float(t) for t in range(400))
    stalls = {"trend": 0.0, "no trend": 0.0}
    for at_s in range(4, 190, 12):
        rates = tuple(3.0 if t <= at_s else 1.5 if t <= at_s + 6 else 0.45 for t in times)
        trace = Trace("falling", times, rates)
        stalls["trend"] += total_stall(trace, ReelStreamMpc())
        stalls["no trend"] += total_stall(trace, no_trend)
    assert stalls["no trend"] > 10.0
    assert stalls["trend"] < stalls["no trend"] / 5
