"""Adaptive-bitrate algorithms behind one interface (see :mod:`.interface`)."""

from reelstream.player.abr.bba import BufferBased
from reelstream.player.abr.bola import Bola
from reelstream.player.abr.fixed import AlwaysLowest
from reelstream.player.abr.interface import AbrAlgorithm, Observation
from reelstream.player.abr.mpc import Mpc, RobustMpc
from reelstream.player.abr.reelstream import ReelStreamMpc, ReelStreamTuning
from reelstream.player.abr.throughput import ThroughputRule

__all__ = [
    "AbrAlgorithm",
    "AlwaysLowest",
    "Bola",
    "BufferBased",
    "Mpc",
    "Observation",
    "ReelStreamMpc",
    "ReelStreamTuning",
    "RobustMpc",
    "ThroughputRule",
    "default_algorithm",
]


def default_algorithm() -> AbrAlgorithm:
    """The ABR ReelStream's player uses unless configured otherwise."""
    return ReelStreamMpc()
