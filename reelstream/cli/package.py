"""Packaging commands: `reel worker package`."""

from __future__ import annotations

import argparse
import signal
import threading

from reelstream.cli._argtypes import at_least
from reelstream.cli.core import Subcommands, add_runtime_flags, settings_from
from reelstream.runtime import Runtime

SCHEMES = ("cenc", "cbcs", "clear")


def _worker_kinds(sub: Subcommands) -> Subcommands:
    """The subcommands of `reel worker` (made by the transcode module, or here)."""
    worker = sub.choices.get("worker") or sub.add_parser("worker", help="run a worker of a fleet")
    for action in worker._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    kinds: Subcommands = worker.add_subparsers(dest="kind", required=True)
    return kinds


def _schemes(text: str) -> list[str]:
    schemes = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in schemes if s not in SCHEMES]
    if bad or not schemes:
        raise argparse.ArgumentTypeError(f"--schemes {text!r}: use a comma list of {', '.join(SCHEMES)}")
    return schemes


def register(sub: Subcommands) -> None:
    package = _worker_kinds(sub).add_parser(
        "package", help="package titles into CMAF + HLS/DASH when they finish transcoding (TitleTranscoded)")
    add_runtime_flags(package)
    package.add_argument("--schemes", type=_schemes, default=["cenc", "cbcs"],
                         help="one package per scheme, each with its own keys (default: cenc,cbcs)")
    package.add_argument("--threads", type=at_least(1), default=2, help="tracks prepared and encrypted at once")
    package.add_argument("--idle-exit", type=float, help="exit after this many seconds without a catalog event")
    package.set_defaults(fn=cmd_worker_package)


def cmd_worker_package(args: argparse.Namespace) -> int:
    from reelstream.keys.config import key_provider
    from reelstream.media.encrypt.keys import KeyProvider
    from reelstream.workers.package import PackageWorker

    runtime = Runtime(settings_from(args))
    provider: KeyProvider | None = None

    def keys() -> KeyProvider:
        nonlocal provider  # one provider per worker, made on first use (REEL_KEK is checked then)
        provider = provider or key_provider(runtime)
        return provider

    if "clear" not in args.schemes:
        keys()  # a missing REEL_KEK or bad REEL_KEY_PROVIDER_URL fails at start, not on the first title
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    worker = PackageWorker(runtime, keys, schemes=args.schemes, threads=args.threads)
    print(f"package worker {worker.worker_id} ({','.join(args.schemes)}) reading {runtime.settings.log_url}",
          flush=True)
    stats = worker.run(stop.is_set, idle_exit_s=args.idle_exit)
    print(f"package worker {worker.worker_id} stopped: {stats}", flush=True)
    runtime.close()
    return 0
