"""bench/abr.py's plot: the four panels the issue asks for, one column per trace set."""

import importlib.util
import struct
from pathlib import Path

BENCH = Path(__file__).resolve().parents[3] / "bench" / "abr.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_abr", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def figures(qoe: float, rebuffer: float, kbps: float, smooth: float) -> dict[str, float]:
    return {"qoe_lin": qoe, "rebuffer_pct": rebuffer, "avg_bitrate_kbps": kbps,
            "smoothness_mbps": smooth, "sessions": 3.0}


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", header[16:24])


def test_plot_has_qoe_rebuffer_bitrate_and_smoothness_for_each_set(tmp_path):
    bench = load_bench()
    assert [key for key, _, _ in bench.PLOT_METRICS] == [
        "qoe_lin", "rebuffer_pct", "avg_bitrate_kbps", "smoothness_mbps"]
    summary = {"BOLA": figures(0.8, 0.1, 950.0, 0.12),
               bench.DEFAULT: figures(0.9, 0.05, 1100.0, 0.09)}
    one_set = tmp_path / "one.png"
    two_sets = tmp_path / "two.png"
    bench.plot({"hsdpa": {"all": summary}}, one_set)
    bench.plot({"hsdpa": {"all": summary}, "fcc": {"all": summary}}, two_sets)
    width_one, height_one = png_size(one_set)
    width_two, height_two = png_size(two_sets)
    assert width_two > 1.8 * width_one        # a column per set
    assert height_one == height_two > width_one  # four panel rows, taller than one column is wide
