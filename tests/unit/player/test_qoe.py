"""QoE_lin / QoE_log / QoE_hd and the session figures, computed by hand."""

from __future__ import annotations

import math

import pytest

from reelstream.player.qoe import chunk_rewards, measure, qoe_models
from reelstream.player.simulator import ChunkRecord, Session

LADDER = (300.0, 750.0, 1200.0, 1850.0, 2850.0, 4300.0)


def session(rungs: list[int], stalls: list[float]) -> Session:
    chunks = tuple(ChunkRecord(i, r, 1000, 1.0, s, 0.0, 4.0)
                   for i, (r, s) in enumerate(zip(rungs, stalls)))
    return Session("t", "a", chunks)


def test_first_chunk_is_left_out_and_penalties_apply() -> None:
    s = session([1, 3, 3, 0], [2.5, 0.0, 0.5, 0.0])
    lin, log, hd = qoe_models(LADDER)
    assert chunk_rewards(s, lin) == pytest.approx(
        [1.85 - 1.1, 1.85 - 4.3 * 0.5, 0.3 - 1.55])
    assert chunk_rewards(s, log)[0] == pytest.approx(
        math.log(1850 / 300) - abs(math.log(1850 / 300) - math.log(750 / 300)))
    assert chunk_rewards(s, hd) == pytest.approx([12 - 10, 12 - 8 * 0.5, 1 - 11])


def test_session_metrics() -> None:
    m = measure(session([1, 3, 3, 0], [2.5, 0.0, 0.5, 0.0]), LADDER, 4.0)
    assert m.startup_s == 1.0
    assert m.stall_s == 0.5  # the startup delay is not a rebuffer
    assert m.play_s == 12.0
    assert m.rebuffer_ratio == pytest.approx(0.5 / 12.5)
    assert m.switches == 2
    assert m.avg_bitrate_kbps == pytest.approx((1850 + 1850 + 300) / 3)
    assert m.smoothness_mbps == pytest.approx((1.1 + 0 + 1.55) / 3)
    assert m.qoe["lin"] == pytest.approx((0.75 + (1.85 - 2.15) + (0.3 - 1.55)) / 3)


def test_hd_is_only_defined_for_the_pensieve_ladder() -> None:
    assert [m.name for m in qoe_models((500.0, 1000.0))] == ["lin", "log"]
