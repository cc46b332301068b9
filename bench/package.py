"""Packaging + encryption throughput: ReelStream vs Shaka Packager 3.8, same renditions,
same machine, same run.

    python bench/package.py [--seconds 30] [--repeats 3] [--workers 2]

Encodes a small ladder (H.264 360p/720p/1080p with noise, 2-second chunks, AAC audio) in
the transcoder's object layout, then per scheme (cenc, cbcs), ``--repeats`` times each:

- ReelStream: ``package_title`` from the object store (local directory) to a published
  package: ffmpeg concat + fragment, in-project encryption, box rewriting, writes (the
  store fsyncs every object), package.json.
- Shaka Packager: one ``packager`` run over the same tracks (2-second segments, raw key,
  same scheme), from one clear MP4 per track. Shaka cannot read a chunk list, so those
  files are made first with ffmpeg ``-f concat -c copy``; that step is timed apart and
  reported both ways, and the target is judged on Shaka alone (the harder comparison).

Throughput is MB of media (bytes of the input chunks and audio files) per second, median
of the repeats. The last line is one JSON object with every figure and ``*_met`` flags.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reelstream.media import tools
from reelstream.media.encrypt.keys import ContentKey, InMemoryKeyProvider
from reelstream.media.package.packager import package_title
from reelstream.stores.localdir import LocalDirObjectStore

LADDER = (("h264-360p-1200k", 640, 360, 1200), ("h264-720p-3500k", 1280, 720, 3500),
          ("h264-1080p-6000k", 1920, 1080, 6000))
KEY = ContentKey("0123456789abcdef0123456789abcdef", bytes.fromhex("00112233445566778899aabbccddeeff"))
TARGET = 1.0


def run(args: list[str]) -> None:
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"failed: {' '.join(args)}\n{done.stderr[-2000:]}")


def encode(media: Path, seconds: int) -> None:
    """One ffmpeg run for the whole ladder (the master decoded once), chunked output."""
    args = [tools.ffmpeg(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc2=size=1920x1080:rate=24:duration={seconds}",
            "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}"]
    split = ";".join([f"[0:v]noise=alls=12:allf=t,split={len(LADDER)}"
                      + "".join(f"[s{i}]" for i in range(len(LADDER)))]
                     + [f"[s{i}]scale={w}:{h},setsar=1[v{i}]" for i, (_, w, h, _) in enumerate(LADDER)])
    args += ["-filter_complex", split]
    for i, (rid, _, _, kbps) in enumerate(LADDER):
        out = media / "renditions" / rid
        out.mkdir(parents=True)
        args += ["-map", f"[v{i}]", "-c:v", "libx264", "-preset", "veryfast", "-b:v", f"{kbps}k",
                 "-maxrate", f"{int(kbps * 1.1)}k", "-bufsize", f"{kbps * 2}k", "-g", "48",
                 "-keyint_min", "48", "-sc_threshold", "0", "-pix_fmt", "yuv420p",
                 "-f", "segment", "-segment_time", "2", "-reset_timestamps", "1",
                 "-segment_format", "mp4", str(out / "%06d.mp4")]
    (media / "audio").mkdir()
    args += ["-map", "1:a", "-c:a", "aac", "-b:a", "128k", "-ac", "2", str(media / "audio" / "audio-en.mp4")]
    run(args)


def media_bytes(media: Path) -> int:
    return sum(p.stat().st_size for p in media.rglob("*.mp4"))


def upload(store: LocalDirObjectStore, media: Path) -> None:
    for p in sorted(media.rglob("*.mp4")):
        rel = p.relative_to(media).parts
        key = (f"titles/t/renditions/{rel[1]}/chunks/{rel[2]}" if rel[0] == "renditions"
               else f"titles/t/audio/{rel[1]}")
        store.put(key, p)


def concat_for_shaka(media: Path, out: Path) -> dict[str, Path]:
    files = {}
    for rid, *_ in LADDER:
        listing = out / f"{rid}.txt"
        listing.write_text("".join(f"file '{c}'\n" for c in sorted((media / "renditions" / rid).glob("*.mp4"))))
        files[rid] = out / f"{rid}.mp4"
        run([tools.ffmpeg(), "-nostdin", "-loglevel", "error", "-y", "-auto_convert", "0", "-f", "concat",
             "-safe", "0", "-i", str(listing), "-c", "copy", str(files[rid])])
    files["audio-en"] = media / "audio" / "audio-en.mp4"
    return files


def shaka(files: dict[str, Path], out: Path, scheme: str) -> None:
    streams = []
    for name, path in files.items():
        kind = "audio" if name.startswith("audio") else "video"
        streams.append(f"in={path},stream={kind},init_segment={out}/{name}/init.mp4,"
                       f"segment_template={out}/{name}/seg-$Number%05d$.m4s")
    run([tools.packager(), *streams, "--segment_duration", "2",
         "--enable_raw_key_encryption", "--keys", f"label=:key_id={KEY.kid}:key={KEY.key.hex()}",
         "--protection_scheme", scheme, "--clear_lead", "0",
         "--mpd_output", f"{out}/manifest.mpd", "--generate_static_live_mpd"])


def timed(fn) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=int, default=30, help="length of the test title")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2, help="ReelStream tracks packaged in parallel")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="reel-bench-package-") as tmp:
        root = Path(tmp)
        media = root / "media"
        t_encode = timed(lambda: encode(media, a.seconds))
        size = media_bytes(media)
        mb = size / 1e6
        store = LocalDirObjectStore(root / "objects")
        upload(store, media)
        provider = InMemoryKeyProvider({"t": {c: KEY for c in ("AUDIO", "SD", "HD", "UHD")}})
        prep: list[float] = []
        files: dict[str, Path] = {}

        def do_prep() -> None:
            nonlocal files
            d = root / f"shaka-in-{len(prep)}"
            d.mkdir()
            files = concat_for_shaka(media, d)

        results: dict[str, dict[str, list[float]]] = {}
        for scheme in ("cenc", "cbcs"):
            r: dict[str, list[float]] = {"reelstream": [], "shaka": []}
            for i in range(a.repeats):
                prep.append(timed(do_prep))
                out = root / f"shaka-{scheme}-{i}"
                r["shaka"].append(timed(lambda o=out, s=scheme: shaka(files, o, s)))
                shutil.rmtree(out)
                r["reelstream"].append(timed(lambda s=scheme, n=i: package_title(
                    store, "t", [x[0] for x in LADDER], ["audio-en"], [], s, provider,
                    package_id=f"{s}-{n}", workers=a.workers)))
                for info in list(store.list(f"packages/t/{scheme}-{i}/")):
                    store.delete(info.key)
            results[scheme] = r
    t_prep = statistics.median(prep)
    figures: dict[str, object] = {"media_mb": round(mb, 2), "seconds": a.seconds,
                                  "repeats": a.repeats, "workers": a.workers, "cpus": os.cpu_count(),
                                  "encode_s": round(t_encode, 1), "shaka_concat_s": round(t_prep, 3)}
    rows = []
    for scheme, r in results.items():
        rs, sh = statistics.median(r["reelstream"]), statistics.median(r["shaka"])
        ratio, ratio_prep = sh / rs, (sh + t_prep) / rs
        figures.update({f"{scheme}_reelstream_s": round(rs, 3), f"{scheme}_shaka_s": round(sh, 3),
                        f"{scheme}_reelstream_mb_s": round(mb / rs, 1), f"{scheme}_shaka_mb_s": round(mb / sh, 1),
                        f"{scheme}_shaka_with_concat_mb_s": round(mb / (sh + t_prep), 1),
                        f"{scheme}_ratio": round(ratio, 3), f"{scheme}_ratio_vs_shaka_with_concat": round(ratio_prep, 3),
                        f"{scheme}_ratio_met": ratio >= TARGET})
        rows.append((scheme, rs, sh, ratio, ratio_prep))
    figures["target_ratio"] = TARGET
    figures["all_met"] = all(figures[f"{s}_ratio_met"] for s in results)
    print(f"media: {mb:.1f} MB ({len(LADDER)} H.264 rungs + AAC, {a.seconds} s), "
          f"median of {a.repeats}, {os.cpu_count()} CPUs; Shaka's concat step: {t_prep:.2f} s")
    print(f"{'scheme':<7}{'ReelStream':>12}{'MB/s':>8}{'Shaka':>10}{'MB/s':>8}{'ratio':>8}{'ratio incl. concat':>20}")
    for scheme, rs, sh, ratio, ratio_prep in rows:
        print(f"{scheme:<7}{rs:>10.2f} s{mb / rs:>8.1f}{sh:>8.2f} s{mb / sh:>8.1f}{ratio:>7.2f}x{ratio_prep:>19.2f}x")
    print(json.dumps(figures, sort_keys=True))


if __name__ == "__main__":
    main()
