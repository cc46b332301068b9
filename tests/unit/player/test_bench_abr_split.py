"""bench/abr.py's tuning / held-out split: by recording, so no data sits on both sides."""

from reelstream.player.traces import Trace
from tests.unit.player.test_bench_abr_plot import load_bench

FCC = [f"test_fcc_trace_{unit}_http---www.{site}.com_{offset}"
       for unit, site in ((111, "amazon"), (222, "ebay"), (333, "yahoo"))
       for offset in (0, 60, 120, 1020)]


def test_windows_of_one_fcc_recording_stay_in_one_half() -> None:
    halves = load_bench().split(sorted(FCC))
    tune, holdout = set(halves["tune"]), set(halves["holdout"])
    assert not tune & holdout and tune | holdout == set(FCC)
    units = {half: {name.split("_")[3] for name in names} for half, names in
             (("tune", tune), ("holdout", holdout))}
    assert units == {"tune": {"111", "333"}, "holdout": {"222"}}
    assert halves["all"] == sorted(FCC)


def test_files_that_are_their_own_recording_alternate() -> None:
    names = sorted(f"norway_bus_{i}" for i in range(1, 7))
    halves = load_bench().split(names)
    assert halves["tune"] == names[0::2] and halves["holdout"] == names[1::2]


def test_traces_split_as_their_names_do() -> None:
    traces = [Trace(name=n, times_s=(0.0, 1.0), mbps=(1.0, 1.0)) for n in sorted(FCC)]
    bench = load_bench()
    by_trace = {k: [t.name for t in v] for k, v in bench.split(traces).items()}
    assert by_trace == bench.split(sorted(FCC))
