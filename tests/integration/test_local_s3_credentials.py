"""infra/local/start.sh s3 with env.sh's published credentials: fine on the loopback (the
tests and CI run so), refused at once anywhere else. No server is fetched or started: the
check comes first, so these run anywhere in well under a second."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEFAULTS = {"REEL_S3_ACCESS_KEY": "reelstream", "REEL_S3_SECRET_KEY": "reelstream-secret"}


def preflight(tmp_path: Path, endpoint: str, credentials: dict[str, str], *, whole_start: bool = False) -> \
        subprocess.CompletedProcess[str]:
    env = {**os.environ, "REEL_RUN_DIR": str(tmp_path), "REEL_S3_ENDPOINT": endpoint, **credentials}
    argv = ["bash", str(REPO / "infra/local/start.sh"), "s3"] if whole_start else \
        ["bash", "-c", f"set -euo pipefail; source {REPO / 'infra/local/lib.sh'}; svc_s3_preflight"]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30, check=False)


@pytest.mark.parametrize("endpoint", ["http://0.0.0.0:43333", "http://10.1.2.3:43333", "http://[::]:43333"])
@pytest.mark.parametrize("credentials", [DEFAULTS, {**DEFAULTS, "REEL_S3_ACCESS_KEY": "reel-1f2e"},
                                         {"REEL_S3_ACCESS_KEY": "", "REEL_S3_SECRET_KEY": ""}])
def test_the_well_known_credentials_are_refused_off_the_loopback(tmp_path: Path, endpoint: str,
                                                                 credentials: dict[str, str]) -> None:
    done = preflight(tmp_path, endpoint, credentials, whole_start=True)
    assert done.returncode != 0 and "refusing to listen" in done.stderr and "reel secrets" in done.stderr, done
    assert not (tmp_path / "pids" / "s3.pid").exists()  # nothing started


@pytest.mark.parametrize(("endpoint", "credentials"), [
    ("http://127.0.0.1:43333", DEFAULTS),  # the tests, CI and env.sh's default
    ("http://0.0.0.0:43333", {"REEL_S3_ACCESS_KEY": "reel-1f2e3d", "REEL_S3_SECRET_KEY": "pQ3" * 14}),
])
def test_the_loopback_or_own_credentials_pass(tmp_path: Path, endpoint: str, credentials: dict[str, str]) -> None:
    done = preflight(tmp_path, endpoint, credentials)
    assert done.returncode == 0, done
