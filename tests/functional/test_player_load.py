"""`reel load` against a running embedded deployment (the gateways, the nginx edge tiers
named as content-steering pathways with the steering server, `reel processors` as a
child process): accounts created and subscribed through the log, DASH and HLS players on
their own traces, one with a link too slow for the title, each asking the steering
server; then given accounts with viewers who leave early, pinned to the PoP. Run as the
real command, in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reelstream.config import Settings
from tests.integration.test_edge_delivery import NO_NGINX
from tests.support.browser import build_browser_media
from tests.support.player import EMAIL, PASSWORD, player_stack

pytestmark = pytest.mark.skipif(NO_NGINX is not None, reason=NO_NGINX or "")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("load")
    media = build_browser_media(root / "media")
    with player_stack(root, media, Settings(data_dir=root / "reel"), child_processors=True,
                      steering=True) as stack:
        yield {**stack, "root": root}


def reel_load(deployment: dict[str, Any], *args: str) -> tuple[int, str, dict[str, Any]]:
    done = subprocess.run([sys.executable, "-m", "reelstream.cli", "load", "--data-dir", str(deployment["root"] / "reel"),
                           "--gateway", deployment["base"], "--title", "t-cenc", *args],
                          cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    lines = done.stdout.strip().splitlines()
    assert lines, done.stderr
    return done.returncode, done.stdout, json.loads(lines[-1])


def test_created_accounts_mixed_formats_and_a_slow_link(deployment: dict[str, Any], tmp_path: Path) -> None:
    traces = tmp_path / "traces"
    traces.mkdir()
    (traces / "a-fast").write_text("0 8.0\n600 8.0\n")
    (traces / "b-slow").write_text("0 0.4\n600 0.4\n")  # under the lowest rung: it must stall
    code, out, figures = reel_load(deployment, "--players", "4", "--format", "mixed", "--traces", str(traces))
    assert code == 0, out
    assert figures["sessions_started"] == figures["sessions_completed"] == 4 and figures["sessions_failed"] == 0
    assert figures["errors"] == {}
    assert figures["play_s"] == pytest.approx(4 * 6.0, abs=0.05), "every player played the whole title"
    assert figures["stall_s"] > 0 and 0 < figures["rebuffer_ratio"] < 1
    assert figures["segments_verified"] == 4 * 7, "3 video and 4 audio segments per session, each decrypted"
    assert 0 < figures["startup_p50_s"] <= figures["startup_p90_s"] <= figures["startup_p99_s"]
    assert figures["license_p50_ms"] > 0 and figures["manifest_p99_ms"] >= figures["manifest_p50_ms"] > 0
    assert figures["heartbeats"] == 4 * 2  # start and the end of the title
    assert set(figures["edge_nodes"]) == {"appliance-isp-a"}, "the steering server ranks the ISP appliance first"
    assert figures["steering_polls"] >= 4 and figures["steering_failed"] == 0, "each asked before its first segment"
    assert figures["pathway_moves"] == 0
    assert "start-up p50 / p90 / p99" in out and "rebuffer ratio" in out and "steering polls" in out


def test_given_accounts_and_viewers_who_leave(deployment: dict[str, Any], tmp_path: Path) -> None:
    accounts = tmp_path / "accounts.txt"
    accounts.write_text(f"# the stack's subscribed account\n{EMAIL} {PASSWORD}\n")
    pop = deployment["topology"].node("pop-1")
    code, out, figures = reel_load(deployment, "--players", "2", "--accounts", str(accounts), "--play-s", "2",
                                   "--format", "hls", "--edge", pop.base_url, "--from-start")
    assert code == 0, out
    assert figures["sessions_completed"] == 2 and figures["play_s"] == pytest.approx(4.0, abs=0.05)
    assert figures["heartbeats"] == 2 * 2, "start, then exit after 2 s of play"
    assert set(figures["edge_nodes"]) == {"pop-1"}, "--edge sent the media requests to the PoP tier"
    assert figures["steering_polls"] == 0, "a pinned tier is not steered"

    accounts.write_text(f"{EMAIL} not the password\n")
    done = subprocess.run([sys.executable, "-m", "reelstream.cli", "load", "--gateway", deployment["base"],
                           "--title", "t-cenc", "--accounts", str(accounts)],
                          cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2 and "could not sign the players in" in done.stderr, done.stderr


def test_bad_options_are_refused_with_their_name(deployment: dict[str, Any], tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "reelstream.cli", "load", "--title", "t", "--players", "0"],
                          cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2 and "--players: 0 is under 1" in done.stderr
    bad = tmp_path / "accounts.txt"
    bad.write_text("only-an-email@example.com\n")
    done = subprocess.run([sys.executable, "-m", "reelstream.cli", "load", "--title", "t", "--gateway",
                           deployment["base"], "--accounts", str(bad)],
                          cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2 and "line 1: expected 'email password'" in done.stderr
