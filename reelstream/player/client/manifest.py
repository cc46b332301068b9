"""Manifests as a player reads them: DASH MPDs and HLS playlists to one ``Presentation``.

Pure functions of the manifest text and its URL (relative URLs resolve against it); the
session fetches. What is read:

- DASH (ISO/IEC 23009-1): static MPD, ``mediaPresentationDuration``; AdaptationSets of
  video and audio with Role and Accessibility; ``SegmentTemplate`` (on the set or the
  Representation) with ``$Number$``/``$Number%0Nd$``/``$RepresentationID$``/``$Time$``
  and a ``SegmentTimeline`` (§5.3.9.6) or a fixed ``duration``; ContentProtection
  ``urn:mpeg:dash:mp4protection:2011`` (scheme, ``cenc:default_KID``, 23001-7 §11.1) and
  the Clear Key license URL (``dashif:Laurl``).
- HLS (RFC 8216): the multivariant playlist's ``EXT-X-STREAM-INF`` and ``EXT-X-MEDIA``
  (TYPE=AUDIO and SUBTITLES), then each media playlist's ``EXTINF``, ``EXT-X-MAP``,
  ``EXT-X-KEY`` (METHOD SAMPLE-AES-CTR = cenc, SAMPLE-AES = cbcs; the ``identity`` key
  URI) and ``EXT-X-BYTERANGE`` (§4.3.2.2).
- Subtitles: WebVTT text tracks (DASH ``text/vtt`` AdaptationSets with a SegmentTemplate
  or one BaseURL; HLS SUBTITLES renditions), with language, forced and SDH roles.
- Content steering: DASH ``<ContentSteering>`` with MPD-level ``BaseURL@serviceLocation``,
  HLS ``EXT-X-CONTENT-STEERING`` with the variants' ``PATHWAY-ID`` (rfc8216bis §4.4.6.6).
  Each parse gives the URLs of one pathway (``pathway=``, the default when None).

Rungs are video renditions in ascending bandwidth. Segment *sizes* are not in these
manifests (ReelStream's packager writes a sidecar beside each track, see
:mod:`reelstream.media.package.sizes`); HLS byte ranges give them where present.
"""

from reelstream.player.client.mpd import fill_template, parse_duration, parse_mpd
from reelstream.player.client.playlists import (
    AudioMedia,
    MediaPlaylist,
    Multivariant,
    SubtitlesMedia,
    Variant,
    attributes,
    hls_presentation,
    parse_media_playlist,
    parse_multivariant,
)
from reelstream.player.client.presentation import (
    Kind,
    Presentation,
    Rendition,
    Scheme,
    SegmentRef,
    Steering,
)

__all__ = ["AudioMedia", "Kind", "MediaPlaylist", "Multivariant", "Presentation", "Rendition", "Scheme",
           "SegmentRef", "Steering", "SubtitlesMedia", "Variant", "attributes", "fill_template", "hls_presentation", "parse_duration",
           "parse_media_playlist", "parse_mpd", "parse_multivariant"]
