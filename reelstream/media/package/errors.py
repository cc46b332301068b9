"""What packaging raises when its input is unusable. Each names the file and the box."""

from __future__ import annotations

from reelstream.errors import ReelStreamError


class PackagingError(ReelStreamError):
    """Packaging a title failed; nothing was published (the staging prefix is removed)."""


class CorruptMedia(PackagingError):
    """An MP4 file is truncated or a box in it is malformed.

    ``file`` is the object key or path, ``box`` the path of the box that is wrong
    (``moof/traf/trun``), ``offset`` where it starts in the file.
    """

    def __init__(self, file: str, box: str, offset: int, why: str) -> None:
        super().__init__(f"{file}: box '{box}' at byte {offset}: {why}; "
                         "re-run the transcode of this rendition or chunk")
        self.file = file
        self.box = box
        self.offset = offset


class UnsupportedCodec(PackagingError):
    """A track's sample entry is not one ReelStream can package (H.264, HEVC and AAC today)."""

    def __init__(self, file: str, box: str, codec: str) -> None:
        super().__init__(f"{file}: box '{box}': codec '{codec}' is not supported "
                         "(ReelStream packages avc1/avc3/hvc1/hev1 video and mp4a audio)")
        self.file = file
        self.box = box
        self.codec = codec


class MissingInput(PackagingError):
    """A rendition, audio or subtitle object the package needs is not in the object store."""
