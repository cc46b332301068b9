"""The Pensieve-model simulator: exact download times, stalls, the buffer cap."""

from __future__ import annotations

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
    """A 4.7-8x collapse to 0.75 Mbit/s (712 kbit/s of payload, above the insured
    700) never stalls ReelStreamMPC, wherever in the session it strikes; the same
    planner without the insurance, and RobustMPC, stall on some of these."""
    uninsured = ReelStreamMpc(replace(ReelStreamTuning(), collapse_kbps=None))
    stalls = {"insured": 0.0, "uninsured": 0.0, "robust": 0.0}
    for at_s in range(4, 190, 6):
        trace = collapse_trace(before_mbps, 0.75, at_s)
        assert total_stall(trace, ReelStreamMpc()) == 0.0, f"collapse at {at_s} s"
        stalls["uninsured"] += total_stall(trace, uninsured)
        stalls["robust"] += total_stall(trace, RobustMpc())
    assert stalls["uninsured"] > 1.0
    assert stalls["robust"] > 1.0
