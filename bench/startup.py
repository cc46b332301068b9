"""Time to first frame in headless Chromium over an emulated 10 Mbit/s, 40 ms RTT link,
through the whole stack: the gateways (manifest, license), the ISP appliance and PoP on
nginx, and the web page's own start-up split (manifest, license, first segment, decode).

    python bench/startup.py [--runs 10]

Each run is a cold start: a fresh browser context (no HTTP cache, no EME session),
signed in, pressing play; the edge caches are warm, as for any title people watch.
The same title is packaged twice, ``cenc`` and ``clear``, and both are measured in the
same run, alternating. Targets: median under 1 s, DRM adding under 10 % to the median.
Ends with ONE JSON line of every figure.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration.test_web_player import EMAIL, PASSWORD, web_stack
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS

# 10 Mbit/s both ways, 40 ms round trip (CDP adds the latency to every response).
NETWORK = {"offline": False, "latency": 40, "downloadThroughput": 10e6 / 8, "uploadThroughput": 10e6 / 8}
# Every cold start is a new browser profile, so a new registered device and stream: lift
# the account limits the gateways enforce (the bench measures start-up, not policy).
LIMITS = {"max_devices": 1000, "max_licensed_devices": 1000, "max_streams": 1000}
TITLES = (("t-drm", "cenc", "Signal Tones (DRM)"), ("t-clear", "clear", "Signal Tones (clear)"))


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def cold_start(browser: Any, base: str, title_id: str) -> dict[str, Any]:
    context = browser.new_context()
    try:
        page = context.new_page()
        cdp = context.new_cdp_session(page)
        cdp.send("Network.enable")
        cdp.send("Network.emulateNetworkConditions", NETWORK)
        page.goto(f"{base}/web/")
        page.fill("#email", EMAIL)
        page.fill("#password", PASSWORD)
        page.click("#signin-button")
        page.click(f".card[data-title-id='{title_id}']", timeout=60_000)
        page.wait_for_selector("#title:not([hidden])")
        page.click("#play")
        page.wait_for_function("() => { const s = reelApp.state(); return s.errors.length > 0 || "
                               "(s.timing && s.timing.firstFrame > 0); }", timeout=60_000)
        state: dict[str, Any] = page.evaluate("reelApp.state()")
        if state["errors"]:
            raise RuntimeError(f"{title_id}: player errors {state['errors']}")
        return state["timing"]  # type: ignore[no-any-return]
    finally:
        context.close()


def summarize(runs: list[dict[str, Any]]) -> dict[str, float]:
    first = [r["firstFrame"] for r in runs]
    out = {"median_ms": statistics.median(first), "p95_ms": p95(first)}
    for part in ("manifest", "license", "firstSegment", "decode"):
        out[f"{part}_median_ms"] = statistics.median(r["parts"][part] for r in runs)
    out["license_parallel_share"] = sum(bool(r.get("licenseParallel")) for r in runs) / len(runs)
    return {k: round(v, 1) if k.endswith("_ms") else round(v, 3) for k, v in out.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10, help="cold starts per title")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="reel-startup-") as tmp, web_stack(
            Path(tmp), TITLES, **LIMITS) as stack, \
            sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            for title_id, _, _ in TITLES:  # warm the edges and the page assets' server side
                cold_start(browser, stack["base"], title_id)
            runs: dict[str, list[dict[str, Any]]] = {t: [] for t, _, _ in TITLES}
            for _ in range(args.runs):
                for title_id, _, _ in TITLES:
                    runs[title_id].append(cold_start(browser, stack["base"], title_id))
        finally:
            browser.close()
    drm, clear = summarize(runs["t-drm"]), summarize(runs["t-clear"])
    overhead = drm["median_ms"] / clear["median_ms"] - 1
    print(f"Time to first frame, {args.runs} cold starts each, 10 Mbit/s, 40 ms RTT (CDP), headless Chromium\n")
    print(f"{'':<12}{'median':>9}{'p95':>9}{'manifest':>10}{'license':>9}{'1st seg':>9}{'decode':>8}")
    for name, s in (("DRM (cenc)", drm), ("clear", clear)):
        print(f"{name:<12}{s['median_ms']:>7.0f}ms{s['p95_ms']:>7.0f}ms{s['manifest_median_ms']:>8.0f}ms"
              f"{s['license_median_ms']:>7.0f}ms{s['firstSegment_median_ms']:>7.0f}ms{s['decode_median_ms']:>6.0f}ms")
    print(f"\nDRM adds {overhead:+.1%} to the median; license overlapped the first segment in "
          f"{drm['license_parallel_share']:.0%} of DRM starts")
    summary = {"runs": args.runs, "drm": drm, "clear": clear, "drm_overhead": round(overhead, 4),
               "median_under_1s_met": drm["median_ms"] < 1000, "drm_under_10pct_met": overhead < 0.10,
               "license_parallel_met": drm["license_parallel_share"] >= 0.5,
               "wall_s": round(time.monotonic() - started, 1)}
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
