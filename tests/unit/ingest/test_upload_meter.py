"""The upload's rate and ETA count the transfer only, not the hashing before it."""

from __future__ import annotations

import pytest

from reelstream.ingest.upload import TransferMeter


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_rate_and_eta_start_with_the_transfer() -> None:
    clock = Clock()
    meter = TransferMeter(clock)
    clock.now = 300.0  # five minutes of hashing a 100-GB master went by before the transfer began
    assert meter.update(0, 100_000) == (0.0, 0.0)  # nothing measurable yet
    clock.now = 310.0
    rate, eta = meter.update(20_000, 100_000)
    assert rate == pytest.approx(2_000) and eta == pytest.approx(40)  # not 20,000 / 310 s
