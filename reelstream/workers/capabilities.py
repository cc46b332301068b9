"""What a worker can encode with, detected at start and advertised in its results.

NVENC/NVDEC need the NVIDIA-capable ffmpeg build (``tools.ffmpeg_gpu``) and a GPU; a
worker started with ``--capabilities cpu|gpu`` is forced (tests route jobs that way).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

from reelstream.media import tools

GPU_ENCODERS = {"h264": "h264_nvenc", "hevc": "hevc_nvenc"}


@dataclass(frozen=True)
class Capabilities:
    gpu: bool
    ffmpeg: str  # the binary this worker runs
    hwaccel: bool = False  # NVDEC decode

    @property
    def label(self) -> str:
        return "gpu" if self.gpu else "cpu"


def detect(force: str | None = None) -> Capabilities:
    """Probe for NVENC by encoding one tiny frame; ``force`` = 'cpu' | 'gpu' skips the probe."""
    if force == "cpu":
        return Capabilities(False, tools.ffmpeg())
    gpu_ffmpeg = tools.ffmpeg_gpu()
    if force == "gpu":
        return Capabilities(True, gpu_ffmpeg or tools.ffmpeg(), hwaccel=True)
    if gpu_ffmpeg is None:
        return Capabilities(False, tools.ffmpeg())
    try:
        subprocess.run([gpu_ffmpeg, "-nostdin", "-v", "error", "-f", "lavfi", "-i", "color=s=256x144:d=0.1",
                        "-c:v", "h264_nvenc", "-f", "null", "-"], check=True, capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return Capabilities(False, tools.ffmpeg())
    return Capabilities(True, gpu_ffmpeg, hwaccel=True)


def use_gpu(prefer_gpu: bool, caps: Capabilities) -> bool:
    """Route a job: the GPU encodes the groups that benefit (HEVC UHD); everything else, and
    every job on a CPU-only worker, goes to the software encoders."""
    return prefer_gpu and caps.gpu
