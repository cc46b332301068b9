"""Delivery: the origin over the ObjectStore, nginx cache tiers generated from a topology,
signed URLs the edge verifies itself, content steering and CMCD logs.

``start_edge`` (in ``stack``) is what ``reel up`` calls."""

from reelstream.edge.runner import INSTALL_HINT, NginxMissing
from reelstream.edge.stack import EdgeStack, start_edge

__all__ = ["INSTALL_HINT", "EdgeStack", "NginxMissing", "start_edge"]
