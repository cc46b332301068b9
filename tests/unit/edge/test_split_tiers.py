"""One tier per machine (the compose file's `pop` and `appliance` services): the topology
names where the other tier runs, and a tier's config fills from there."""

from __future__ import annotations

from pathlib import Path

import pytest

from reelstream.cli import build_parser, main
from reelstream.cli.edge import _tier_flags_problem
from reelstream.edge.nginx import render_config
from reelstream.edge.signing import EdgeSecret
from reelstream.edge.topology import local_topology
from reelstream.errors import ConfigError


def test_the_appliance_fills_from_the_pop_host_and_lets_the_prober_read_its_load(tmp_path: Path) -> None:
    topology = local_topology("http://origin:18399", tmp_path, bind="0.0.0.0", pop_host="pop",
                              appliance_host="appliance", status_allow=("172.16.0.0/12", "10.0.0.0/8"))
    pop, appliance = topology.nodes
    assert (pop.base_url, appliance.base_url) == ("http://pop:18400", "http://appliance:18401")
    config = render_config(topology, appliance, EdgeSecret("s" * 24))
    assert "upstream fill { server pop:18400; keepalive 16; }" in config
    assert "allow 127.0.0.1; allow ::1; allow 172.16.0.0/12; allow 10.0.0.0/8; deny all;" in config
    assert "listen 0.0.0.0:18401;" in config


@pytest.mark.parametrize("bad", [{"pop_host": "pop;evil"}, {"status_allow": ("everyone",)}])
def test_a_bad_host_or_network_fails_at_start(tmp_path: Path, bad: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        local_topology("http://origin:18399", tmp_path, **bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(("argv", "problem"), [
    (["--tier", "appliance", "--origin-url", "http://o:1"], "--pop-host"),
    (["--tier", "pop", "--origin-url", "http://o:1"], "--appliance-host"),
    (["--tier", "pop", "--appliance-host", "a"], "--origin-url"),
    (["--pop-host", "p"], "--tier"),
    (["--tier", "pop", "--appliance-host", "a", "--origin-url", "http://o:1"], None),
])
def test_a_tier_alone_needs_to_know_where_the_others_run(argv: list[str], problem: str | None) -> None:
    found = _tier_flags_problem(build_parser().parse_args(["edge", "up", *argv]))
    assert (problem in found) if problem and found else found is problem


def test_a_tier_without_the_gateways_edge_secret_refuses_to_start(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # A secret made up for the run (what the all-in-one `reel edge up` does) would refuse every
    # URL the gateways sign: a tier of a deployment must be given theirs.
    monkeypatch.delenv("REEL_EDGE_SECRET", raising=False)
    argv = ["edge", "up", "--tier", "appliance", "--origin-url", "http://origin:18399", "--pop-host", "pop",
            "--data-dir", str(tmp_path), "--work-dir", str(tmp_path / "edge")]
    assert main(argv) == 2
    assert "REEL_EDGE_SECRET" in capsys.readouterr().err
    assert not (tmp_path / "edge").exists()
