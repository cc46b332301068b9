"""`reel secrets` prints the data dir's secrets, the same on every call, as an env file."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from reelstream.cli import main
from reelstream.keys.kek import kek_from_setting
from reelstream.up import up_secrets


def test_secrets_are_made_once_and_printed_as_an_env_file(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["secrets", "--data-dir", str(tmp_path)]) == 0
    first = capsys.readouterr().out
    assert main(["secrets", "--data-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out == first
    values = dict(line.split("=", 1) for line in first.splitlines())
    assert set(values) == {"REEL_KEK", "REEL_GATEWAY_SIGNING_KEYS", "REEL_EDGE_SECRET", "REEL_INGEST_TOKENS",
                           "REEL_S3_ACCESS_KEY", "REEL_S3_SECRET_KEY"}
    kek_from_setting(values["REEL_KEK"])  # a valid 32-byte KEK
    assert len(base64.b64decode(values["REEL_GATEWAY_SIGNING_KEYS"].split(":", 1)[1])) == 32


def test_a_secret_added_by_an_upgrade_joins_an_existing_file_without_changing_the_others(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    older = {"REEL_KEK": base64.b64encode(b"k" * 32).decode(), "REEL_GATEWAY_SIGNING_KEYS": "k1:c2VjcmV0",
             "REEL_EDGE_SECRET": "edge-secret-of-an-older-version"}
    (tmp_path / "secrets.json").write_text(json.dumps(older))
    assert main(["secrets", "--data-dir", str(tmp_path)]) == 0
    values = dict(line.split("=", 1) for line in capsys.readouterr().out.splitlines())
    assert {k: values[k] for k in older} == older  # the KEK above all: it wraps every content key
    assert len(values["REEL_INGEST_TOKENS"]) >= 24
    assert json.loads((tmp_path / "secrets.json").read_text()) == values
    assert (tmp_path / "secrets.json").stat().st_mode & 0o777 == 0o600


def test_the_s3_credentials_are_generated_per_deployment_and_join_an_older_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # compose's S3 server and its clients read them from infra/.env: never the published defaults
    older = {"REEL_KEK": base64.b64encode(b"k" * 32).decode(), "REEL_GATEWAY_SIGNING_KEYS": "k1:c2VjcmV0",
             "REEL_EDGE_SECRET": "e" * 32, "REEL_INGEST_TOKENS": "t" * 32}
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "secrets.json").write_text(json.dumps(older))
    made = []
    for data_dir in (tmp_path / "a", tmp_path / "b"):
        assert main(["secrets", "--data-dir", str(data_dir)]) == 0
        made.append(dict(line.split("=", 1) for line in capsys.readouterr().out.splitlines()))
    assert {k: made[0][k] for k in older} == older
    for values in made:
        assert values["REEL_S3_ACCESS_KEY"] != "reelstream" and len(values["REEL_S3_SECRET_KEY"]) >= 32
        assert values["REEL_S3_SECRET_KEY"] != "reelstream-secret"
    assert made[0]["REEL_S3_SECRET_KEY"] != made[1]["REEL_S3_SECRET_KEY"]


def test_reel_up_does_not_hand_its_roles_the_compose_s3_pair(tmp_path: Path) -> None:
    # its roles reach the S3 server their settings name (infra/local's, with env.sh's keys) or none
    assert not {"REEL_S3_ACCESS_KEY", "REEL_S3_SECRET_KEY"} & set(up_secrets(tmp_path))
    assert "REEL_KEK" in up_secrets(tmp_path)
