"""bench/abr_search.py: the knob space, the feasibility rule and a search on synthetic links."""

import importlib.util
import json
import random
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from reelstream.player.abr import ReelStreamTuning
from reelstream.player.traces import Trace, Video

BENCH = Path(__file__).resolve().parents[3] / "bench"
LADDER = (300.0, 750.0, 1200.0, 1850.0, 2850.0, 4300.0)


def load_search():
    spec = importlib.util.spec_from_file_location("bench_abr_search", BENCH / "abr_search.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module      # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def search():
    return load_search()


def figures(search, ratio=1.06, excess=0.0, ratio_pooled=None, excess_pooled=None):
    return search.SetFigures(ratio, excess, ratio if ratio_pooled is None else ratio_pooled,
                             excess if excess_pooled is None else excess_pooled, starts=4)


def test_every_drawn_setting_is_a_valid_tuning(search):
    rng = random.Random(3)
    for _ in range(200):
        knobs = search.draw(rng)
        assert set(knobs) == set(search.SPACE)
        tuning = replace(ReelStreamTuning(), **knobs)
        assert 250.0 <= tuning.collapse_kbps <= 900.0
        assert tuning.capped_from_rung in (1, 2, 3)
        assert tuning.tail_kbps is None or 250.0 <= tuning.tail_kbps <= 450.0
        # the product rules are not searched
        assert (tuning.floor_s, tuning.target_s) == (10.0, 30.0)


def test_a_mutation_redraws_one_to_three_knobs(search):
    rng = random.Random(5)
    parent = search.draw(random.Random(1))
    changed = []
    for _ in range(300):
        child = search.mutate(parent, rng)
        assert set(child) == set(parent)
        changed.append(sum(child[k] != parent[k] for k in parent))
    assert max(changed) <= 3 and sum(c >= 1 for c in changed) > 250
    assert changed.count(1) > changed.count(3)     # one knob most often


def test_search_is_reproducible_from_its_seed(search):
    a, b = random.Random(9), random.Random(9)
    assert [search.draw(a) for _ in range(5)] == [search.draw(b) for _ in range(5)]


def test_feasible_needs_both_targets_on_both_sets_at_both_kinds_of_start(search):
    good = figures(search)
    assert search.feasible({"hsdpa": good, "fcc": good})
    assert not search.feasible({"hsdpa": good, "fcc": figures(search, ratio=1.049)})
    assert not search.feasible({"hsdpa": figures(search, ratio_pooled=1.04), "fcc": good})
    assert not search.feasible({"hsdpa": figures(search, excess=0.4), "fcc": good})
    assert not search.feasible({"hsdpa": figures(search, excess_pooled=2.0), "fcc": good})
    # stalling *less* than BOLA is fine
    assert search.feasible({"hsdpa": figures(search, excess=-3.0), "fcc": good})


def test_objective_prices_stall_above_bola_and_ignores_stall_below(search):
    clean = {"hsdpa": figures(search, ratio=1.08), "fcc": figures(search, ratio=1.06)}
    assert search.objective(clean) == pytest.approx(1.06)
    below = {"hsdpa": figures(search, ratio=1.08, excess=-5.0), "fcc": figures(search, ratio=1.06)}
    assert search.objective(below) == pytest.approx(1.06)
    # 2 s at the protocol's starts and 8 s pooled over 4 starts: 2 + 8 / 4 = 4 s
    stalled = {"hsdpa": figures(search, ratio=1.08, excess=2.0, excess_pooled=8.0),
               "fcc": figures(search, ratio=1.06)}
    assert search.objective(stalled) == pytest.approx(1.06 - 4 * search.STALL_PRICE)


def test_frontier_takes_the_best_ratio_within_each_stall_allowance(search):
    def trial(ratio, excess):
        return search.Trial({}, {"hsdpa": figures(search, ratio=ratio, excess=excess,
                                                  excess_pooled=0.0)})
    safe, some, bold = trial(0.97, 0.0), trial(1.03, 2.5), trial(1.09, 9.0)
    best = dict(search.frontier([bold, some, safe], (0.0, 3.0, 6.0, 12.0)))
    assert best == {0.0: safe, 3.0: some, 6.0: some, 12.0: bold}
    assert dict(search.frontier([bold], (1.0,))) == {1.0: None}


def synthetic_halves():
    steady = Trace("steady", tuple(float(t) for t in range(401)), (2.0,) * 401)
    jittery = Trace("jittery", tuple(float(t) for t in range(401)),
                    tuple(2.5 if (t // 20) % 2 else 0.5 for t in range(401)))
    return {"hsdpa": [steady, jittery], "fcc": [jittery]}


def test_a_short_search_scores_every_setting_against_the_references(search):
    row = tuple(int(rate * 1000 * 4.0 / 8) for rate in LADDER)
    video = Video(bitrates_kbps=LADDER, chunk_s=4.0, sizes=(row,) * 12)
    arena = search.Arena(video, synthetic_halves(), offsets=1, workers=2)
    seen = []
    trials = search.search(arena, budget=3, seed=2, progress=lambda i, t: seen.append(i))
    assert seen == list(range(len(search.SEEDS) + 3))
    assert trials[0].knobs == {}                       # the default comes first
    for trial in trials:
        assert set(trial.figures) == {"hsdpa", "fcc"}
        for f in trial.figures.values():
            assert f.starts == 2 and f.ratio_protocol > 0 and f.ratio_pooled > 0
    # the same setting scores the same (simulations are deterministic)
    again = arena.figures(trials[1].knobs)
    assert again == trials[1].figures


def test_a_setting_to_start_from_must_name_real_knobs(search):
    assert search.parse_knobs('{"collapse_share": 1.6, "tail_kbps": null}') == {
        "collapse_share": 1.6, "tail_kbps": None}
    with pytest.raises(ValueError, match="not knobs of ReelStreamTuning: colapse_share"):
        search.parse_knobs('{"colapse_share": 1.6}')
    with pytest.raises(ValueError, match="JSON object"):
        search.parse_knobs("[1, 2]")
    with pytest.raises(ValueError, match="JSON object"):
        search.parse_knobs("{collapse_share: 1.6}")


def test_the_sets_to_search_on_must_be_known_ones(search):
    assert search.parse_sets("hsdpa") == ("hsdpa",)
    assert search.parse_sets(" fcc, hsdpa,fcc ") == ("fcc", "hsdpa")
    with pytest.raises(ValueError, match="--sets: 4g; choose from hsdpa, fcc"):
        search.parse_sets("hsdpa,4g")
    with pytest.raises(ValueError, match="none given"):
        search.parse_sets(" , ")


def test_a_search_plays_the_settings_it_starts_from_first(search):
    row = tuple(int(rate * 1000 * 4.0 / 8) for rate in LADDER)
    video = Video(bitrates_kbps=LADDER, chunk_s=4.0, sizes=(row,) * 8)
    arena = search.Arena(video, {"hsdpa": synthetic_halves()["hsdpa"]}, offsets=0, workers=1)
    start = {"collapse_share": 1.6, "smooth_penalty": 2.8}
    trials = search.search(arena, budget=1, seed=4, starts=({}, start))
    assert [t.knobs for t in trials[:2]] == [{}, start] and len(trials) == 3


def test_settings_that_differ_only_in_knobs_left_off_behave_alike(search):
    assert search.behaviour({"scenario_kbps": 150.0}) == search.behaviour({"scenario_kbps": 290.0})
    assert search.behaviour({"tail_chunks": 4}) == search.behaviour({})
    assert search.behaviour({"scenario_weight": 0.03, "scenario_kbps": 150.0}) != \
        search.behaviour({"scenario_weight": 0.03, "scenario_kbps": 290.0})
    assert search.behaviour({"tail_kbps": 300.0, "tail_chunks": 4}) != \
        search.behaviour({"tail_kbps": 300.0, "tail_chunks": 6})


def test_a_search_never_plays_the_same_behaviour_twice(search):
    row = tuple(int(rate * 1000 * 4.0 / 8) for rate in LADDER)
    video = Video(bitrates_kbps=LADDER, chunk_s=4.0, sizes=(row,) * 6)
    arena = search.Arena(video, {"hsdpa": synthetic_halves()["hsdpa"][:1]}, offsets=0, workers=1)
    trials = search.search(arena, budget=25, seed=8)
    behaviours = [search.behaviour(t.knobs) for t in trials]
    assert len(set(behaviours)) == len(behaviours)


def write_data(root: Path) -> Path:
    """A tiny ABR data folder: the paper's ladder at constant sizes, two HSDPA-like links."""
    (root / "video_sizes").mkdir(parents=True)
    for rung, rate in enumerate(LADDER):
        (root / "video_sizes" / f"video_size_{rung}").write_text(
            "\n".join([str(int(rate * 1000 * 4.0 / 8))] * 48))
    (root / "traces" / "hsdpa").mkdir(parents=True)
    for name, low in (("link_a", 0.5), ("link_b", 0.3)):
        lines = [f"{t}.0\t{2.5 if (t // 20) % 2 else low}" for t in range(400)]
        (root / "traces" / "hsdpa" / name).write_text("\n".join(lines))
    return root


def run_main(search, monkeypatch, capsys, tmp_path, *extra):
    monkeypatch.setenv("REEL_ABR_DATA", str(write_data(tmp_path / "abr")))
    search.main(["--budget", "0", "--offsets", "0", "--workers", "1", "--sets", "hsdpa",
                 "--also", '{"collapse_kbps": 230.0, "capped_from_rung": 1}', *extra])
    lines = capsys.readouterr().out.strip().splitlines()
    return lines, json.loads(lines[-1])


def test_a_sweep_names_each_setting_it_plays(search, monkeypatch, capsys, tmp_path):
    lines, out = run_main(search, monkeypatch, capsys, tmp_path, "--tuning-only")
    rows = [line for line in lines if line.startswith("[")]
    assert len(rows) == len(search.SEEDS) + 1
    assert rows[-1].endswith('{"collapse_kbps": 230.0, "capped_from_rung": 1}')
    assert out["settings_tried"] == len(rows) and out["sets"] == ["hsdpa"]


def test_tuning_only_plays_nothing_on_the_held_out_halves(search, monkeypatch, capsys,
                                                          tmp_path):
    lines, out = run_main(search, monkeypatch, capsys, tmp_path, "--tuning-only")
    assert "held-out halves not played (--tuning-only)" in lines
    assert not [key for key in out if key.startswith("holdout_")]
    assert "tune_hsdpa_ratio_protocol" in out and "tuning_feasible_setting_found_met" in out

    lines, out = run_main(search, monkeypatch, capsys, tmp_path / "again")
    assert any(line.startswith("its held-out figures") for line in lines)
    assert "holdout_hsdpa_ratio_protocol" in out and "holdout_both_targets_met" in out
