"""Fixed-rung policies, used as references (e.g. the stall floor of a trace set)."""

from __future__ import annotations

from reelstream.player.abr.interface import AbrAlgorithm, Observation


class AlwaysLowest(AbrAlgorithm):
    """Always fetch rung 0: any stall it suffers is an outage no ABR can avoid."""

    name = "AlwaysLowest"

    def choose(self, obs: Observation) -> int:
        return 0
