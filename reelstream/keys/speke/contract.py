"""The SPEKE v2 encryption contract ReelStream speaks: PRESET-VIDEO-3 + PRESET-AUDIO-1.

ReelStream keeps exactly one key per title and class (AUDIO, SD, HD, UHD), so its key
provider accepts usage rules that each fall inside one class: any subset of
PRESET-VIDEO-3 (SD <= 1024x576 < HD <= 1920x1080 < UHD) with PRESET-AUDIO-1 (one audio
key). Presets that split a class (PRESET-VIDEO-4..8 split HD or UHD, PRESET-AUDIO-2/3
split audio by channels), that merge classes (PRESET-VIDEO-1 "VIDEO", PRESET-VIDEO-2 "HD"
covering UHD, "SD+HD1") or share one key ("ALL"/SHARED) are refused with the rule named:
they would hand a software-secure device a key that also opens HD.
"""

from __future__ import annotations

from collections.abc import Mapping

from reelstream.keys.model import HD_MAX_PIXELS, SD_MAX_PIXELS, KeyClass, video_key_class
from reelstream.keys.speke.cpix import AudioFilter, CpixError, UsageRule, VideoFilter

# PRESET-VIDEO-3 and PRESET-AUDIO-1 (AWS "SPEKE v2.0 presets"), as CPIX filters.
PRESET_FILTERS: dict[KeyClass, VideoFilter | AudioFilter] = {
    "AUDIO": AudioFilter(),
    "SD": VideoFilter(max_pixels=SD_MAX_PIXELS),
    "HD": VideoFilter(min_pixels=SD_MAX_PIXELS + 1, max_pixels=HD_MAX_PIXELS),
    "UHD": VideoFilter(min_pixels=HD_MAX_PIXELS + 1),
}


def usage_rules(kids: Mapping[KeyClass, str]) -> tuple[UsageRule, ...]:
    """The contract a ReelStream encryptor sends: one rule per class it needs."""
    rules = []
    for key_class, kid in kids.items():
        f = PRESET_FILTERS[key_class]
        rules.append(UsageRule(kid, key_class, video_filters=(f,) if isinstance(f, VideoFilter) else (),
                               audio_filters=(f,) if isinstance(f, AudioFilter) else ()))
    return tuple(rules)


def key_classes(rules: tuple[UsageRule, ...]) -> dict[str, KeyClass]:
    """KID -> the ReelStream key class its rule covers; CpixError for contracts it cannot honour."""
    by_kid: dict[str, KeyClass] = {}
    by_class: dict[KeyClass, UsageRule] = {}
    for rule in rules:
        key_class = _class_of(rule)
        if key_class in by_class:
            raise CpixError(
                f"ContentKeyUsageRule {rule.intended_track_type!r} and {by_class[key_class].intended_track_type!r} "
                f"both fall in the {key_class} class; ReelStream keeps one key per class "
                "(use PRESET-VIDEO-3 with PRESET-AUDIO-1)")
        if rule.kid in by_kid:
            raise CpixError(f"KID {rule.kid} has two ContentKeyUsageRules; give each class its own key")
        by_class[key_class] = rule
        by_kid[rule.kid] = key_class
    return by_kid


def _class_of(rule: UsageRule) -> KeyClass:
    name = rule.intended_track_type
    if rule.video_filters and rule.audio_filters:
        raise CpixError(f"ContentKeyUsageRule {name!r} shares one key between audio and video; "
                        "ReelStream keeps separate audio and video keys")
    if len(rule.video_filters) + len(rule.audio_filters) != 1:
        raise CpixError(f"ContentKeyUsageRule {name!r} needs exactly one VideoFilter or AudioFilter")
    if rule.audio_filters:
        a = rule.audio_filters[0]
        if a.min_channels is not None or a.max_channels is not None:
            raise CpixError(f"ContentKeyUsageRule {name!r} splits audio by channels (PRESET-AUDIO-2/3); "
                            "ReelStream keeps one audio key (PRESET-AUDIO-1)")
        return "AUDIO"
    v = rule.video_filters[0]
    if v.hdr is not None or v.min_fps is not None or v.max_fps is not None:
        raise CpixError(f"ContentKeyUsageRule {name!r}: ReelStream classes video by resolution only "
                        "(no hdr or fps filters)")
    low = video_key_class(max(v.min_pixels or 1, 1), 1)
    high = video_key_class(v.max_pixels, 1) if v.max_pixels is not None else "UHD"
    if low != high:
        raise CpixError(f"ContentKeyUsageRule {name!r} spans {low} and {high}; ReelStream keeps one key per "
                        "class (SD <= 1024x576 < HD <= 1920x1080 < UHD)")
    if not _covers_whole_class(v, low):
        raise CpixError(f"ContentKeyUsageRule {name!r} covers part of the {low} class only "
                        "(PRESET-VIDEO-4..8 split HD or UHD); ReelStream keeps one key per class")
    return low


def _covers_whole_class(v: VideoFilter, key_class: KeyClass) -> bool:
    """A rule may narrow to what the title has, but not split a class between two keys: its
    bounds must be the class bounds (or open on that side)."""
    bounds = {"SD": (None, SD_MAX_PIXELS), "HD": (SD_MAX_PIXELS + 1, HD_MAX_PIXELS), "UHD": (HD_MAX_PIXELS + 1, None)}
    low, high = bounds[key_class]
    low_ok = v.min_pixels is None or v.min_pixels <= (low or 1)
    high_ok = v.max_pixels is None or (high is not None and v.max_pixels >= high)
    return low_ok and high_ok
