"""Every processor ReelStream runs, by name (what `reel replay NAME` takes)."""

from __future__ import annotations

from reelstream.processors.base import Processor
from reelstream.processors.catalog.logic import CatalogProcessor
from reelstream.processors.cmcd.logic import SessionDeliveryProcessor
from reelstream.processors.entitlements.logic import EntitlementProcessor
from reelstream.processors.keys.logic import KeyCatalogProcessor
from reelstream.processors.licenses.logic import LicenseProcessor
from reelstream.processors.packaging.logic import PackagingProcessor
from reelstream.processors.playback.logic import WatchPositionProcessor
from reelstream.processors.popularity.logic import PopularityProcessor
from reelstream.processors.sessions.logic import LiveSessionProcessor
from reelstream.processors.transcode.completion import TranscodeCompletionProcessor
from reelstream.processors.transcode.fleet import TranscodeFleetProcessor
from reelstream.processors.transcode.progress import ChunkProgressProcessor

PROCESSORS: dict[str, type[Processor]] = {
    p.name: p for p in (CatalogProcessor, EntitlementProcessor, WatchPositionProcessor, LicenseProcessor,
                        KeyCatalogProcessor, ChunkProgressProcessor, TranscodeCompletionProcessor,
                        LiveSessionProcessor)
}
PROCESSORS[PackagingProcessor.name] = PackagingProcessor
PROCESSORS[PopularityProcessor.name] = PopularityProcessor
PROCESSORS[SessionDeliveryProcessor.name] = SessionDeliveryProcessor
PROCESSORS[TranscodeFleetProcessor.name] = TranscodeFleetProcessor


def all_processors() -> list[Processor]:
    return [cls() for cls in PROCESSORS.values()]
