"""The static checks run with the suite, so that CI holds the code to them: ruff's lint
over the repository and ``mypy --strict`` over the package (settings in pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _check(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *argv], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, check=False)


def test_ruff_finds_nothing_to_fix() -> None:
    result = _check("ruff", "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_package_type_checks_under_mypy_strict() -> None:
    result = _check("mypy")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success" in result.stdout
