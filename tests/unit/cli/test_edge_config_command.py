"""`reel edge config NODE` prints the config the running edge has: the same secure_link
secret (it made up a fresh one per call when REEL_EDGE_SECRET was unset)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reelstream.cli import main
from reelstream.up import ensure_secrets


def config_of(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = main(["edge", "config", *args])
    out = capsys.readouterr()
    return status, out.out, out.err


def test_the_config_uses_the_secret_reel_up_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("REEL_EDGE_SECRET", raising=False)
    secret = ensure_secrets(tmp_path / "reel")["REEL_EDGE_SECRET"]
    args = ["pop-1", "--data-dir", str(tmp_path / "reel"), "--work-dir", str(tmp_path / "edge")]
    status, first, _ = config_of(args, capsys)
    assert status == 0 and secret in first
    assert config_of(args, capsys)[1] == first, "the same config on every call"
    monkeypatch.setenv("REEL_EDGE_SECRET", "from-the-environment")
    assert "from-the-environment" in config_of(args, capsys)[1]


def test_no_secret_anywhere_or_an_unknown_node_is_a_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("REEL_EDGE_SECRET", raising=False)
    status, out, err = config_of(["pop-1", "--data-dir", str(tmp_path)], capsys)
    assert (status, out) == (2, "") and "REEL_EDGE_SECRET is not set" in err
    (tmp_path / "secrets.json").write_text(json.dumps({"REEL_KEK": "x"}))
    assert config_of(["pop-1", "--data-dir", str(tmp_path)], capsys)[0] == 2
    status, out, err = config_of(["pop-9", "--data-dir", str(tmp_path)], capsys)
    assert (status, out) == (2, "") and "no node 'pop-9'" in err and "appliance-isp-a" in err
