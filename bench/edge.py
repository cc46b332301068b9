"""Segment delivery throughput: through the nginx cache tiers (ISP appliance -> PoP ->
origin, warm), against nginx serving the same files straight from disk, and the
Python origin/gateway path (aiohttp over the ObjectStore) alone; same run, same client.

    python bench/edge.py [--seconds 8] [--concurrency 32] [--segment-kb 500]

The client is aiohttp with keep-alive on the same 2 cores, so absolute figures are
bounded by the client too; the ratio between paths is the figure to read. Ends with ONE
JSON line of every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pwd
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp

from reelstream.edge import nginx
from reelstream.edge.origin import origin_app
from reelstream.edge.runner import EdgeRunner, find_nginx
from reelstream.edge.signing import EdgeSecret, signed_base
from reelstream.edge.topology import local_topology
from reelstream.stores.localdir import LocalDirObjectStore
from tests.integration.test_edge_delivery import free_port_block
from tests.support.browser import serve

TITLE = "t-bench"
PREFIX = f"packages/{TITLE}/p1/"


async def hammer(urls: list[str], seconds: float, concurrency: int) -> dict[str, float]:
    done = {"requests": 0, "bytes": 0, "errors": 0}
    deadline = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def worker(offset: int) -> None:
            i = offset
            while time.monotonic() < deadline:
                async with session.get(urls[i % len(urls)]) as response:
                    body = await response.read()
                    done["requests" if response.status == 200 else "errors"] += 1
                    done["bytes"] += len(body)
                i += concurrency
        started = time.monotonic()
        await asyncio.gather(*(worker(k) for k in range(concurrency)))
        elapsed = time.monotonic() - started
    return {"rps": done["requests"] / elapsed, "mb_s": done["bytes"] / elapsed / 1e6, "errors": done["errors"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--segment-kb", type=int, default=500)
    parser.add_argument("--segments", type=int, default=200)
    args = parser.parse_args()
    started = time.monotonic()
    binary = find_nginx()
    secret = EdgeSecret(secrets.token_urlsafe(24))
    with tempfile.TemporaryDirectory(prefix="reel-edge-bench-") as tmp:
        root = Path(tmp)
        objects = LocalDirObjectStore(root / "objects")
        keys = [f"v/seg-{n:05d}.m4s" for n in range(1, args.segments + 1)]
        for key in keys:
            objects.put(PREFIX + key, os.urandom(args.segment_kb * 1024), content_type="video/mp4")
        static_dir = root / "static"
        for sub in ("logs", "tmp"):
            (static_dir / sub).mkdir(parents=True)
        port = free_port_block(3)
        run_as = pwd.getpwuid(os.geteuid()).pw_name if os.geteuid() == 0 else None
        (static_dir / "nginx.conf").write_text(nginx.render_static_config(static_dir, port + 2, root / "objects",
                                                                          run_as))
        argv = [binary, "-p", f"{static_dir}/", "-c", str(static_dir / "nginx.conf")]
        print("running:", " ".join(argv))
        static = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
        try:
            with serve(origin_app(objects)) as origin:
                topology = local_topology(origin, root / "edge", base_port=port)
                with EdgeRunner(topology, secret, popular=[TITLE]):
                    for _ in range(100):
                        try:
                            urllib.request.urlopen(f"http://127.0.0.1:{port + 2}/healthz", timeout=1)
                            break
                        except OSError:
                            time.sleep(0.05)
                    appliance = topology.node("appliance-isp-a")
                    assert appliance is not None
                    base = signed_base(appliance.base_url, secret, PREFIX, int(time.time()) + 3600)
                    paths = {
                        "tiers (appliance hit)": [base + k for k in keys],
                        "nginx from disk": [f"http://127.0.0.1:{port + 2}/{PREFIX}{k}" for k in keys],
                        "gateway/origin only": [f"{origin}/{PREFIX}{k}" for k in keys],
                    }
                    for url in paths["tiers (appliance hit)"]:  # warm both tiers
                        urllib.request.urlopen(url).read()
                    results = {name: asyncio.run(hammer(urls, args.seconds, args.concurrency))
                               for name, urls in paths.items()}
        finally:
            static.terminate()
            static.wait(10)
    disk = results["nginx from disk"]
    print(f"\n{args.segments} segments of {args.segment_kb} KB, {args.concurrency} connections, "
          f"{args.seconds:g} s per path\n")
    print(f"{'path':<24}{'req/s':>10}{'MB/s':>10}{'vs disk':>10}{'errors':>8}")
    for name, r in results.items():
        print(f"{name:<24}{r['rps']:>10,.0f}{r['mb_s']:>10,.0f}{r['mb_s'] / disk['mb_s']:>10.2f}{r['errors']:>8.0f}")
    tiers, gateway = results["tiers (appliance hit)"], results["gateway/origin only"]
    summary = {"tiers_rps": round(tiers["rps"]), "tiers_mb_s": round(tiers["mb_s"], 1),
               "disk_rps": round(disk["rps"]), "disk_mb_s": round(disk["mb_s"], 1),
               "gateway_rps": round(gateway["rps"]), "gateway_mb_s": round(gateway["mb_s"], 1),
               "tiers_vs_disk": round(tiers["mb_s"] / disk["mb_s"], 3),
               "gateway_vs_disk": round(gateway["mb_s"] / disk["mb_s"], 3),
               "errors": int(sum(r["errors"] for r in results.values())),
               "no_errors_met": all(r["errors"] == 0 for r in results.values()),
               "tiers_faster_than_gateway_met": tiers["mb_s"] > gateway["mb_s"],
               "wall_s": round(time.monotonic() - started, 1)}
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
