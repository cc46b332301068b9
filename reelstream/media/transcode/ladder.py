"""The bitrate ladder: which renditions a title gets, and how rungs group into encoder jobs."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from reelstream.errors import ConfigError

CODECS = ("h264", "hevc")


@dataclass(frozen=True)
class Rung:
    """One rendition of the ladder. ``width`` 0 means: follow the master's aspect ratio."""

    codec: str
    height: int
    bitrate_kbps: int
    hdr: bool = False
    width: int = 0

    @property
    def rendition_id(self) -> str:
        return f"{self.codec}-{self.height}p-{self.bitrate_kbps}k" + ("-hdr" if self.hdr else "")

    @property
    def encoder_group(self) -> str:
        """Rungs encoded together from one decode of a chunk (one filter graph, one ffmpeg)."""
        return f"{self.codec}-{'hdr' if self.hdr else 'sdr'}"

    def check(self) -> Rung:
        where = f"ladder rung {self.rendition_id}"
        if self.codec not in CODECS:
            raise ConfigError(f"{where}: codec must be one of {', '.join(CODECS)}")
        if self.height < 144 or self.height % 2 or self.height > 4320:
            raise ConfigError(f"{where}: height must be even, 144..4320")
        if not 50 <= self.bitrate_kbps <= 100_000:
            raise ConfigError(f"{where}: bitrate_kbps must be 50..100000")
        if self.hdr and self.codec != "hevc":
            # HDR10 needs 10-bit; the H.264 rungs are for 8-bit SDR devices.
            raise ConfigError(f"{where}: HDR rungs must be hevc (Main10)")
        return self


# The mission's default: 10 rungs, 240p at 400 kbit/s to 2160p HDR10 at 15 Mbit/s.
# H.264 up to 1080p for every device; HEVC Main10 HDR10 for the UHD rungs.
DEFAULT_LADDER: tuple[Rung, ...] = (
    Rung("h264", 240, 400), Rung("h264", 360, 800), Rung("h264", 480, 1400), Rung("h264", 540, 2000),
    Rung("h264", 720, 3000), Rung("h264", 720, 4500), Rung("h264", 1080, 6000), Rung("h264", 1080, 8000),
    Rung("hevc", 1440, 10000, hdr=True), Rung("hevc", 2160, 15000, hdr=True),
)


def even(value: float) -> int:
    return max(2, round(value / 2) * 2)


def ladder_for(master_width: int, master_height: int, master_hdr: bool, ladder: Iterable[Rung] = DEFAULT_LADDER,
               max_height: int | None = None) -> list[Rung]:
    """The rungs this master gets: none above its resolution (or the license's max height),
    HDR rungs only from an HDR master (SDR rungs of an HDR master are tone-mapped), widths
    from the master's aspect ratio."""
    kept = []
    for rung in ladder:
        if rung.height > master_height or (max_height and rung.height > max_height):
            continue
        if rung.hdr and not master_hdr:
            continue
        width = rung.width or even(rung.height * master_width / master_height)
        kept.append(replace(rung, width=width))
    return kept


def groups(rungs: Iterable[Rung]) -> dict[str, list[Rung]]:
    out: dict[str, list[Rung]] = {}
    for rung in rungs:
        out.setdefault(rung.encoder_group, []).append(rung)
    return out


def load_ladder(path: Path) -> tuple[Rung, ...]:
    """A ladder from JSON: ``[{"codec": "h264", "height": 720, "bitrate_kbps": 3000, "hdr": false}, ...]``."""
    try:
        items: Any = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"ladder file {path}: {e}") from e
    if not isinstance(items, list) or not items:
        raise ConfigError(f"ladder file {path}: expected a non-empty JSON list of rungs")
    rungs = []
    for i, item in enumerate(items):
        try:
            rungs.append(Rung(str(item["codec"]), int(item["height"]), int(item["bitrate_kbps"]),
                              bool(item.get("hdr", False)), int(item.get("width", 0))).check())
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError(f"ladder file {path}: rung {i}: missing or bad field {e}") from e
    ids = [r.rendition_id for r in rungs]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"ladder file {path}: duplicate rendition ids in {ids}")
    return tuple(rungs)
