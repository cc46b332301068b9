"""Damage in a master found while encoding it: ffmpeg conceals what its decoders cannot decode
and carries on (exit status 0), so a master damaged between the seconds ingest decodes (its
first and last) was encoded, packaged and published with the damage in every rung."""

from __future__ import annotations

import re

from reelstream.errors import ReelStreamError

# ffmpeg's decoder loop warns once per frame its decoder returned flagged as corrupt
# (AV_FRAME_FLAG_CORRUPT). Not every decoder complaint: a seek into an open-GOP H.264 master logs
# "mmco: unref short failure" errors for leading pictures it then drops, with no corrupt frame.
_CORRUPT_FRAME = "corrupt decoded frame"
# An audio packet the decoder refused: its samples are missing from the output.
_BAD_AUDIO_PACKET = "Error submitting packet to decoder"
_ADDRESS = re.compile(r" @ 0x[0-9a-f]+")


class MasterDamaged(ReelStreamError):
    """A chunk or an audio track of the master decoded with errors: the message names where and the
    decoder's first complaint. Deterministic: the master must be delivered again."""


def _first(lines: list[str], marker: str) -> str:
    """The first line with ``marker``, without the decoder's memory address."""
    return next((_ADDRESS.sub("", line.strip()) for line in lines if marker in line), "")


def _complaints(stderr: str, marker: str, first_marker: str) -> tuple[int, str]:
    """How many decoder lines carry ``marker``, and the first with ``first_marker``."""
    lines = stderr.splitlines()
    return sum(marker in line for line in lines), _first(lines, first_marker)


def check_video(stderr: str, where: str) -> None:
    """Raise MasterDamaged when the decode of ``where`` (a chunk) returned corrupt frames."""
    corrupt, first = _complaints(stderr, _CORRUPT_FRAME, "[error]")
    if corrupt:
        raise MasterDamaged(f"the master's video is damaged in {where}: {corrupt} frames decoded corrupt "
                            f"(first error: {first}); deliver the master again")


def check_audio(stderr: str, where: str) -> None:
    """Raise MasterDamaged when the decode of ``where`` (an audio track) dropped packets."""
    refused, first = _complaints(stderr, _BAD_AUDIO_PACKET, _BAD_AUDIO_PACKET)
    if refused:
        raise MasterDamaged(f"{where} is damaged: the decoder refused {refused} packets "
                            f"(first error: {first}); deliver it again")
