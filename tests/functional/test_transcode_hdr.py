"""HDR10: a 10-bit PQ/BT.2020 master yields Main10 HDR10 rungs (x265 CLI) and tone-mapped SDR rungs."""

from __future__ import annotations

import json
import subprocess
import threading
from fractions import Fraction
from pathlib import Path

import pytest

from reelstream.config import Settings
from reelstream.ingest.service import IngestService
from reelstream.media import tools
from reelstream.media.probe import count_frames
from reelstream.media.tools import MediaToolMissing
from reelstream.media.transcode.chunk import encode_chunk
from reelstream.media.transcode.commands import ChunkEncode, RungEncode
from reelstream.media.transcode.ladder import Rung
from reelstream.runtime import Runtime
from reelstream.workers.capabilities import Capabilities
from reelstream.workers.transcode import TranscodeWorker
from tests.functional.test_transcode_embedded import events, finished, run_completion_until
from tests.support.media import make_master, title_metadata, write_metadata

LADDER = (Rung("h264", 144, 200), Rung("hevc", 180, 600, hdr=True))


def ffprobe(*args: str) -> dict:  # type: ignore[type-arg]
    out = subprocess.run([tools.ffprobe(), "-v", "error", "-of", "json", *args], capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out)  # type: ignore[no-any-return]


def test_an_hdr10_master_gives_main10_hdr10_rungs_and_tone_mapped_sdr_rungs(tmp_path: Path) -> None:
    runtime = Runtime(Settings(data_dir=tmp_path / "reel"))
    master = make_master(tmp_path / "studio" / "hdr.mp4", seconds=4, hdr=True, languages=("en",))
    source = ffprobe("-show_streams", "-select_streams", "v", str(master))["streams"][0]
    assert (source["profile"], source["pix_fmt"], source["color_transfer"]) == ("Main 10", "yuv420p10le", "smpte2084")
    metadata = write_metadata(tmp_path / "studio" / "title.json", title_metadata("hdr-1", master, languages=("en",)))
    IngestService(runtime, LADDER, calibrate_rate=False).ingest(master, metadata)
    worker = TranscodeWorker(runtime, "w1", Capabilities(False, tools.ffmpeg()), scratch=tmp_path / "scratch", threads=1)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop.is_set,))
    thread.start()
    try:
        run_completion_until(runtime, lambda: finished(runtime, "hdr-1") is not None, timeout=300)
    finally:
        stop.set()
        thread.join()
    assert finished(runtime, "hdr-1") == "TitleTranscoded"
    files: dict[str, list[Path]] = {}
    for rendition in ("hevc-180p-600k-hdr", "h264-144p-200k"):
        for key in [o.key for o in runtime.objects.list(f"titles/hdr-1/renditions/{rendition}/chunks/")]:
            path = tmp_path / "out" / key
            runtime.objects.download(key, path)
            files.setdefault(rendition, []).append(path)
    hdr = files["hevc-180p-600k-hdr"]
    assert [count_frames(p) for p in hdr] == [48, 48]
    for path in hdr:
        stream = ffprobe("-show_streams", "-select_streams", "v", str(path))["streams"][0]
        assert (stream["codec_tag_string"], stream["profile"], stream["pix_fmt"]) == ("hvc1", "Main 10", "yuv420p10le")
        assert (stream["color_transfer"], stream["color_primaries"], stream["color_space"]) == (
            "smpte2084", "bt2020", "bt2020nc")
        assert float(stream["duration"]) == pytest.approx(2.0)  # the frame log's display order, no drift
        first = ffprobe("-show_frames", "-select_streams", "v", "-read_intervals", "%+#1", str(path))["frames"][0]
        assert first["key_frame"] == 1 and first["pict_type"] == "I" and float(first["pts_time"]) == 0.0
        side = {d["side_data_type"]: d for d in first.get("side_data_list", [])}
        assert side["Mastering display metadata"]["max_luminance"] == "10000000/10000"
        assert side["Content light level metadata"]["max_content"] == 1000
        assert side["Content light level metadata"]["max_average"] == 400
    # Frame-exact on the grid: the rung's chunks, joined, decode to as many frames as the master.
    listing = tmp_path / "hdr.txt"
    listing.write_text("".join(f"file '{p}'\n" for p in hdr))
    decode = subprocess.run([tools.ffmpeg(), "-nostdin", "-v", "error", "-f", "concat", "-safe", "0", "-i",
                             str(listing), "-f", "framemd5", "-"], capture_output=True, text=True, check=False)
    assert decode.returncode == 0 and decode.stderr == ""
    assert len([line for line in decode.stdout.splitlines() if not line.startswith("#")]) == 96
    sdr = ffprobe("-show_streams", "-select_streams", "v", str(files["h264-144p-200k"][0]))["streams"][0]
    assert (sdr["pix_fmt"], sdr["color_transfer"], sdr["color_primaries"]) == ("yuv420p", "bt709", "bt709")
    # A quality figure for every rung, HEVC included (the encoders' PSNR against the scaled source).
    results = [e for e in events(runtime, "reel.transcode.results") if e.type == "ChunkTranscoded"]
    outputs = [o for e in results for o in e["outputs"]]
    assert {o["rendition_id"] for o in outputs} == {r.rendition_id for r in LADDER}
    assert all(o["psnr_db"] is not None and o["psnr_db"] > 25 for o in outputs), outputs
    assert all(o["ssim"] is not None and 0.5 < o["ssim"] <= 1 for o in outputs), outputs  # x264's and x265's SSIM


def test_without_the_x265_cli_hdr_rungs_fail_clearly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    master = make_master(tmp_path / "hdr.mp4", seconds=2, hdr=True, languages=())
    monkeypatch.delenv("REEL_X265", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    job = ChunkEncode(master=master, fps=Fraction(24), start_frame=0, frame_count=48,
                      rungs=(RungEncode("hevc-180p-600k-hdr", "hevc", 320, 180, 600, hdr=True),),
                      outputs=(tmp_path / "out.mp4",), source_hdr=True, threads=1)
    with pytest.raises(MediaToolMissing, match="x265 command line"):
        encode_chunk(job, tmp_path)
    assert not (tmp_path / "out.mp4").exists()  # and never a silent 8-bit rung
