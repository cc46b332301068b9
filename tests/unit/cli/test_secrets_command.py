"""`reel secrets` prints the data dir's secrets, the same on every call, as an env file."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from reelstream.cli import main
from reelstream.keys.kek import kek_from_setting


def test_secrets_are_made_once_and_printed_as_an_env_file(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["secrets", "--data-dir", str(tmp_path)]) == 0
    first = capsys.readouterr().out
    assert main(["secrets", "--data-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out == first
    values = dict(line.split("=", 1) for line in first.splitlines())
    assert set(values) == {"REEL_KEK", "REEL_GATEWAY_SIGNING_KEYS", "REEL_EDGE_SECRET"}
    kek_from_setting(values["REEL_KEK"])  # a valid 32-byte KEK
    assert len(base64.b64decode(values["REEL_GATEWAY_SIGNING_KEYS"].split(":", 1)[1])) == 32
