"""Sidecar subtitles: SRT (SubRip) or WebVTT in, timing validated, WebVTT out.

WebVTT cue timings follow the W3C WebVTT spec §4.1 ("hh:mm:ss.ttt --> hh:mm:ss.ttt",
hours optional); SRT uses a comma before the milliseconds and numbers its cues.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_TIME = r"(?:(\d{1,3}):)?(\d{2}):(\d{2})[.,](\d{3})"
_TIMING = re.compile(rf"^\s*{_TIME}\s*-->\s*{_TIME}(.*)$")


class SubtitleError(ValueError):
    """The file is not valid SRT/WebVTT or its timing is wrong; the message names the cue."""


@dataclass(frozen=True)
class Cue:
    start_ms: int
    end_ms: int
    text: str
    settings: str = ""


# Byte order marks name their encoding unambiguously; subtitle tools on Windows save SRT as
# UTF-16 ("Unicode") with one. UTF-32's marks start with UTF-16's, so they are tried first.
_BOMS = ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe\x00\x00", "utf-32"), (b"\x00\x00\xfe\xff", "utf-32"),
         (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"))


def decode(data: bytes) -> str:
    """The file's text: in the encoding its byte order mark names, else UTF-8. Raises
    SubtitleError naming the line of the first byte that is not UTF-8 (Latin-1 or Windows-1252
    files guessed at would show wrong letters to viewers, so they are refused, not guessed)."""
    encoding = next((name for bom, name in _BOMS if data.startswith(bom)), "utf-8")
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise SubtitleError(f"line {line}: byte 0x{data[e.start]:02x} is not {encoding.upper()}; save the file as "
                            "UTF-8 (e.g. iconv -f WINDOWS-1252 -t UTF-8 if it was written on Windows)") from e


def _ms(h: str | None, m: str, s: str, ms: str) -> int:
    return ((int(h or 0) * 60 + int(m)) * 60 + int(s)) * 1000 + int(ms)


def parse(text: str) -> tuple[str, list[Cue]]:
    """('srt' | 'webvtt', cues). Raises SubtitleError on malformed timing lines."""
    text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    fmt = "webvtt" if text.startswith("WEBVTT") else "srt"
    cues: list[Cue] = []
    for number, block in enumerate(b for b in re.split(r"\n\s*\n", text.strip()) if b.strip()):
        lines = block.split("\n")
        if fmt == "webvtt" and (number == 0 or lines[0].startswith(("NOTE", "STYLE", "REGION"))):
            continue  # the header block, comments and style blocks hold no cues
        timing_at = next((i for i, line in enumerate(lines) if "-->" in line), None)
        if timing_at is None or timing_at > 1:
            raise SubtitleError(f"cue {len(cues) + 1}: no timing line ('00:00:01,000 --> 00:00:02,000')")
        match = _TIMING.match(lines[timing_at])
        if not match:
            raise SubtitleError(f"cue {len(cues) + 1}: malformed timing {lines[timing_at].strip()!r}")
        g = match.groups()
        cues.append(Cue(_ms(*g[0:4]), _ms(*g[4:8]), "\n".join(lines[timing_at + 1:]).strip(),
                        g[8].strip() if fmt == "webvtt" else ""))
    return fmt, cues


def timing_problems(cues: list[Cue], duration_ms: int | None) -> list[str]:
    """Empty when every cue ends after it starts, cues start in order, and none runs past the film."""
    problems = []
    if not cues:
        problems.append("no cues")
    previous = 0
    for i, cue in enumerate(cues, 1):
        if cue.end_ms <= cue.start_ms:
            problems.append(f"cue {i} ends ({cue.end_ms} ms) before it starts ({cue.start_ms} ms)")
        if cue.start_ms < previous:
            problems.append(f"cue {i} starts at {cue.start_ms} ms, before cue {i - 1} ({previous} ms)")
        previous = cue.start_ms
        if duration_ms is not None and cue.end_ms > duration_ms + 1000:
            problems.append(f"cue {i} ends at {cue.end_ms} ms, after the master ends ({duration_ms} ms)")
    return problems


def _stamp(ms: int) -> str:
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


def _payload(text: str) -> str:
    """Cue text as WebVTT allows it (W3C WebVTT §4.2.2: a cue's text never contains "-->"; a
    parser reads such a line as the next cue's timing and loses the cue's text from there on)."""
    return text.replace("-->", "--&gt;")


def to_webvtt(cues: list[Cue]) -> str:
    blocks = [f"{_stamp(c.start_ms)} --> {_stamp(c.end_ms)}{' ' + c.settings if c.settings else ''}\n"
              f"{_payload(c.text)}" for c in cues]
    return "WEBVTT\n\n" + "\n\n".join(blocks) + "\n"


def looks_sdh(cues: list[Cue]) -> bool:
    """SDH describes sounds in brackets ('[door slams]', '(MUSIC)'); a hint when metadata says nothing."""
    described = sum(1 for c in cues if re.search(r"[\[(][^\])]{2,}[\])]|♪", c.text))
    return bool(cues) and described * 5 >= len(cues)
