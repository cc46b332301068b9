"""`reel topics`: every topic the code defines, the GPU job topic included, and `--create`
makes each one `reel tail` can then read."""

from __future__ import annotations

from pathlib import Path

import pytest

from reelstream.cli import main
from reelstream.events.topics import GPU_JOBS_TOPIC, SECONDARY_TOPICS, TOPICS


def test_topics_lists_and_creates_every_topic(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["topics", "--data-dir", str(tmp_path)]) == 0
    listed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("reel.")]
    assert listed == [t.name for t in TOPICS + SECONDARY_TOPICS] and GPU_JOBS_TOPIC in listed
    assert main(["topics", "--create", "--data-dir", str(tmp_path)]) == 0
    capsys.readouterr()
    assert main(["tail", GPU_JOBS_TOPIC, "--from-beginning", "--exit-at-end", "--data-dir", str(tmp_path)]) == 0
    assert "does not exist" not in capsys.readouterr().err
