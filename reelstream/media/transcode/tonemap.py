"""HDR10 (PQ, BT.2020) to SDR (BT.709) tone mapping as a 3-D LUT for ffmpeg's ``lut3d``.

The static ffmpeg has no zscale, so the ``tonemap`` filter cannot linearise PQ; a LUT
over non-linear R'G'B' does the whole chain in one lookup: PQ EOTF (SMPTE ST 2084),
BT.2020 to BT.709 primaries (ITU-R BT.2087), an extended-Reinhard curve on luminance
with HDR reference white at 203 cd/m2 (ITU-R BT.2408), then the BT.709 OETF.
"""

from __future__ import annotations

from pathlib import Path

# SMPTE ST 2084 constants.
M1, M2 = 2610 / 16384, 2523 / 4096 * 128
C1, C2, C3 = 3424 / 4096, 2413 / 4096 * 32, 2392 / 4096 * 32
REFERENCE_WHITE = 203.0  # cd/m2 (BT.2408): maps to SDR 100%
# BT.2087: linear BT.2020 RGB -> linear BT.709 RGB.
BT2020_TO_BT709 = ((1.6605, -0.5876, -0.0728), (-0.1246, 1.1329, -0.0083), (-0.0182, -0.1006, 1.1187))


def pq_to_nits(value: float) -> float:
    p = max(value, 0.0) ** (1 / M2)
    return float(10000.0 * (max(p - C1, 0.0) / (C2 - C3 * p)) ** (1 / M1))


def bt709_oetf(linear: float) -> float:
    linear = min(max(linear, 0.0), 1.0)
    return 4.5 * linear if linear < 0.018 else 1.099 * linear ** 0.45 - 0.099


def tone_map(rgb: tuple[float, float, float], peak_nits: float) -> tuple[float, float, float]:
    """One non-linear PQ BT.2020 R'G'B' triple (0..1) to non-linear BT.709 R'G'B'."""
    linear = [pq_to_nits(c) / REFERENCE_WHITE for c in rgb]
    r, g, b = (sum(m * c for m, c in zip(row, linear, strict=True)) for row in BT2020_TO_BT709)
    luma = 0.2126 * r + 0.7152 * g + 0.0722 * b
    white = max(peak_nits / REFERENCE_WHITE, 1.0)
    if luma > 0:
        mapped = luma * (1 + luma / (white * white)) / (1 + luma)
        r, g, b = (c * mapped / luma for c in (r, g, b))
    return bt709_oetf(r), bt709_oetf(g), bt709_oetf(b)


def cube(peak_nits: float = 1000.0, size: int = 33) -> str:
    """The LUT in Adobe .cube format (red varies fastest)."""
    lines = [f"TITLE \"ReelStream PQ BT.2020 to BT.709, peak {peak_nits:g} nits\"", f"LUT_3D_SIZE {size}"]
    step = 1 / (size - 1)
    for bi in range(size):
        for gi in range(size):
            for ri in range(size):
                r, g, b = tone_map((ri * step, gi * step, bi * step), peak_nits)
                lines.append(f"{r:.6f} {g:.6f} {b:.6f}")
    return "\n".join(lines) + "\n"


def write_cube(directory: Path, peak_nits: float = 1000.0) -> Path:
    path = directory / f"pq-to-bt709-{int(peak_nits)}.cube"
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        tmp.write_text(cube(peak_nits))
        tmp.replace(path)
    return path


def peak_of(master_display: str | None, max_cll: str | None) -> float:
    """The master's peak luminance: MaxCLL when known, else the mastering display's max."""
    if max_cll:
        first = max_cll.split(",")[0]
        if first.isdigit() and int(first) > 0:
            return float(first)
    if master_display and "L(" in master_display:
        return int(master_display.split("L(")[1].split(",")[0]) / 10000
    return 1000.0
