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


class TooManySubsamples(PackagingError):
    """A protected sample has more subsamples than its sample auxiliary information may hold.

    Each sample's senc entry (IV, subsample count, 6 bytes per subsample; 23001-7 7.2) is
    sized in ``saiz``, one byte per sample (14496-12 8.7.8), so no entry can exceed 255
    bytes: 39 subsamples with 16-byte IVs, 40 with 8-byte IVs, 42 with a constant IV.
    Keeping the extra NAL units wholly clear would fit, but would leave picture data
    unprotected, so packaging stops instead. ``sample`` is the sample's index in the
    fragment whose moof starts at byte ``offset`` of ``file``; ``limit`` is saiz's 255.
    """

    def __init__(self, file: str, offset: int, sample: int, entry_size: int, subsamples: int,
                 iv_size: int, limit: int) -> None:
        most = (limit - iv_size - 2) // 6
        ivs = f"{iv_size}-byte IVs" if iv_size else "a constant IV"
        super().__init__(
            f"{file}: fragment at byte {offset}, sample {sample}: its senc entry would be "
            f"{entry_size} bytes ({subsamples} subsamples), but saiz records at most "
            f"{limit} bytes per sample ({most} subsamples with {ivs}); "
            "re-encode this rendition with fewer slices (NAL units) per picture")
        self.file = file
        self.offset = offset
        self.sample = sample
        self.entry_size = entry_size


class MissingInput(PackagingError):
    """A rendition, audio or subtitle object the package needs is not in the object store."""
