"""What can go wrong while a player plays; each error names the URL or box at fault."""

from __future__ import annotations

from reelstream.errors import ReelStreamError


class PlayerError(ReelStreamError):
    """Root of the player client's errors."""


class ManifestInvalid(PlayerError):
    """A DASH MPD or HLS playlist could not be read: the message names the element or line."""


class RequestFailed(PlayerError):
    """A gateway or edge answered with an error status, or did not answer; ``status`` is 0
    when there was no HTTP answer at all (connection refused or reset, timeout).
    ``elapsed_s`` is the real time the attempt took."""

    def __init__(self, what: str, url: str, status: int, detail: str, elapsed_s: float = 0.0) -> None:
        super().__init__(f"{what}: {status or 'no answer'} from {_short(url)}: {detail[:300]}")
        self.what = what
        self.url = url
        self.detail = detail
        self.status = status
        self.elapsed_s = elapsed_s

    @property
    def transient(self) -> bool:
        """Whether another server may well answer: a 5xx or no answer at all (a 4xx is
        about the request itself and would fail anywhere)."""
        return self.status == 0 or self.status >= 500


class LicenseIncomplete(PlayerError):
    """The license server returned no key for any playable video rendition, or none for
    the audio: there is nothing this device may decrypt."""


class SegmentInvalid(PlayerError):
    """A fetched segment is not the media the manifest promised: wrong sequence or decode
    time, unparseable boxes, or samples that do not decrypt to valid media."""


class SteeringInvalid(PlayerError):
    """The steering server's answer is not a steering manifest (not JSON, or VERSION, TTL,
    PATHWAY-PRIORITY or RELOAD-URI missing or of the wrong type). The session keeps its
    pathway and asks again after the TTL; the poll records this message."""


class SubtitlesInvalid(PlayerError):
    """A subtitle segment is not the WebVTT the manifest promised: not UTF-8, no WEBVTT
    signature, an unreadable cue timing, or a cue outside the segment's time span."""


def _short(url: str) -> str:
    # Signed URLs and tickets are long; the path's tail says which object failed.
    base, _, _query = url.partition("?")
    return base if len(base) < 120 else base[:40] + "..." + base[-70:]
