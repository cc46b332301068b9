"""bench/abr.py --bola-targets: the HSDPA rebuffer target's yardstick at other BOLA buffer
targets, dash.js's own among them."""

import pytest

from reelstream.player.abr.bola import Bola
from reelstream.player.abr.interface import Observation
from tests.unit.player.test_bench_abr_plot import load_bench

LADDER_KBPS = (300.0, 750.0, 1200.0, 1850.0, 2850.0, 4300.0)


def observation(buffer_s: float) -> Observation:
    return Observation(throughputs_kbps=(), download_times_s=(), buffer_s=buffer_s, last_rung=0,
                       upcoming_sizes_bytes=[[int(k * 500) for k in LADDER_KBPS]], chunks_remaining=40,
                       chunk_duration_s=4.0, bitrates_kbps=LADDER_KBPS)


def test_dashjs_switches_to_the_top_rung_at_22_s_on_this_ladder() -> None:
    target = load_bench().DASHJS_BOLA_TARGET_S
    assert target == 22.0  # max(stableBufferTime 12 s, 10 s + 2 s x 6 rungs)
    bola = Bola(buffer_target_s=target)
    assert bola.choose(observation(9.0)) == 0
    assert bola.choose(observation(target)) == len(LADDER_KBPS) - 1
    assert Bola().choose(observation(target)) == 1  # the bench's BOLA, at the paper's 60 s


@pytest.mark.parametrize("value", ["sixty", "60,8", "10"])
def test_bad_bola_targets_are_a_usage_error(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        load_bench().main(["--bola-targets", value])
    assert exit_.value.code == 2
    assert "--bola-targets" in capsys.readouterr().err
