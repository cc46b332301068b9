"""``reel load``: N concurrent simulated players against a running deployment.

Each player is a full :mod:`reelstream.player.client.session` (sign in, resume point,
manifest, license, segments from the edge decrypted and checked, heartbeats) on its own
network trace: a file from ``--traces DIR`` (FCC/HSDPA format, assigned round robin) or
a synthetic one. Players run as asyncio tasks in one process; their clocks are virtual,
so a session takes as long as the deployment needs to answer it, not the title's length.

What it reports (:func:`summarize`): sessions started, completed and failed (errors by
kind), start-up time percentiles (virtual: control-plane latency + the trace's transfer
time of the first segments), rebuffer ratio (stall / (stall + play), over all sessions),
manifest and license latency percentiles (real, measured), and the bitrate played.

Pure parts (traces, the summary, the table) are separate from the async runner.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from reelstream.errors import ReelStreamError
from reelstream.player.abr import AbrAlgorithm, default_algorithm
from reelstream.player.client import gateway
from reelstream.player.client.errors import RequestFailed
from reelstream.player.client.fetch import Http
from reelstream.player.client.license import clearkey_license
from reelstream.player.client.session import PlaybackReport, PlayerConfig, play
from reelstream.player.traces import Trace

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Account:
    email: str
    password: str


@dataclass(frozen=True)
class LoadConfig:
    """One load run.

    Attributes:
        gateway: the gateways' base URL.
        title_id: the title every player plays.
        players: concurrent players.
        format: "dash", "hls", or "mixed" (every other player HLS).
        play_s: each viewer leaves after this much play time (None: to the end).
        ramp_s: real seconds over which player starts are spread.
        edge: when set, media requests go to this edge (scheme://host:port) instead of
            the one the manifest names (same signed paths).
    """

    gateway: str
    title_id: str
    players: int
    traces: Sequence[Trace]
    format: Literal["dash", "hls", "mixed"] = "dash"
    play_s: float | None = None
    ramp_s: float = 0.0
    country: str = "US"
    device_type: str = "browser"
    security_level: str = "software"
    edge: str | None = None
    abr: AbrAlgorithm = field(default_factory=default_algorithm)
    start_at_s: float | None = None  # None: each player reads its resume point, as a viewer's player does


@dataclass(frozen=True)
class Outcome:
    """One player's result: its report, or the error that ended it."""

    player: int
    trace: str
    report: PlaybackReport | None
    error: str | None = None
    error_kind: str | None = None


# --------------------------------------------------------------------------- traces


def synthetic_trace(seed: int, seconds: int = 900) -> Trace:
    """A reproducible, bursty trace: a base rate drawn log-uniformly from 0.5-20 Mbit/s,
    one sample a second varying +-40 % around it, and short dips to a fifth of it (about
    one second in fifty), as cellular and busy Wi-Fi links show."""
    rng = random.Random(f"reel-load:{seed}")
    base = math.exp(rng.uniform(math.log(0.5), math.log(20.0)))
    rates = []
    for _ in range(seconds):
        rate = base * rng.uniform(0.6, 1.4)
        if rng.random() < 0.02:
            rate *= 0.2
        rates.append(round(rate, 3))
    return Trace(f"synthetic-{seed}", tuple(float(t) for t in range(seconds + 1)), (rates[0], *rates))


def traces_for(players: int, available: Sequence[Trace], seed: int = 0) -> list[Trace]:
    """A trace per player: the given ones round robin, else synthetic ones."""
    if available:
        return [available[i % len(available)] for i in range(players)]
    return [synthetic_trace(seed * 100_003 + i) for i in range(players)]


# --------------------------------------------------------------------------- summary


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class LoadSummary:
    players: int
    started: int
    completed: int
    failed: int
    errors: dict[str, int]
    startup_s: dict[str, float | None]
    manifest_ms: dict[str, float | None]
    license_ms: dict[str, float | None]
    rebuffer_ratio: float
    stall_s: float
    play_s: float
    avg_bitrate_kbps: float | None
    segments_verified: int
    heartbeats: int
    edge_nodes: dict[str, int]  # chunks served per edge node (X-Edge-Node)
    wall_s: float
    steering_polls: int = 0  # requests to the content-steering server
    steering_failed: int = 0  # ... that got no steering manifest (the session kept its pathway)
    pathway_moves: int = 0  # times a session moved its segments to another pathway
    segment_failovers: int = 0  # chunks fetched again on the next pathway after a 5xx / no answer
    startup_failovers: int = 0  # session starts moved to the next pathway (playlists, inits, sidecars failed)

    def as_json(self) -> dict[str, Any]:
        return {"players": self.players, "sessions_started": self.started, "sessions_completed": self.completed,
                "sessions_failed": self.failed, "errors": self.errors,
                **{f"startup_{k}_s": v for k, v in self.startup_s.items()},
                **{f"manifest_{k}_ms": v for k, v in self.manifest_ms.items()},
                **{f"license_{k}_ms": v for k, v in self.license_ms.items()},
                "rebuffer_ratio": self.rebuffer_ratio, "stall_s": self.stall_s, "play_s": self.play_s,
                "avg_bitrate_kbps": self.avg_bitrate_kbps, "segments_verified": self.segments_verified,
                "heartbeats": self.heartbeats, "edge_nodes": self.edge_nodes, "wall_s": self.wall_s,
                "steering_polls": self.steering_polls, "steering_failed": self.steering_failed,
                "pathway_moves": self.pathway_moves, "segment_failovers": self.segment_failovers,
                "startup_failovers": self.startup_failovers}


def _pcts(values: Sequence[float], scale: float = 1.0) -> dict[str, float | None]:
    out = {}
    for q in (50, 90, 99):
        v = percentile(values, q)
        out[f"p{q}"] = None if v is None else round(v * scale, 3)
    return out


def summarize(outcomes: Sequence[Outcome], wall_s: float) -> LoadSummary:
    """Every figure of a run; a session that failed after its first frame counts as started."""
    reports = [o.report for o in outcomes if o.report is not None]
    stall = sum(r.stall_s for r in reports)
    played = sum(r.play_s for r in reports)
    rates = [rate for r in reports if (rate := played_kbps(r)) is not None]
    return LoadSummary(
        players=len(outcomes), started=sum(1 for r in reports if r.startup_s is not None),
        completed=sum(1 for o in outcomes if o.report is not None and o.error is None),
        failed=sum(1 for o in outcomes if o.error),
        errors=dict(Counter(o.error_kind or "error" for o in outcomes if o.error)),
        startup_s=_pcts([r.startup_s for r in reports if r.startup_s is not None]),
        manifest_ms=_pcts([r.manifest_s for r in reports], 1000),
        license_ms=_pcts([r.license_s for r in reports if r.license_s > 0], 1000),
        rebuffer_ratio=round(stall / (stall + played), 5) if stall + played else 0.0,
        stall_s=round(stall, 3), play_s=round(played, 3),
        avg_bitrate_kbps=round(sum(rates) / len(rates), 1) if rates else None,
        segments_verified=sum(r.segments_verified for r in reports),
        heartbeats=sum(len(r.beats) for r in reports),
        edge_nodes=dict(Counter(d.edge_node or "unknown" for r in reports for d in r.decisions)),
        wall_s=round(wall_s, 3),
        steering_polls=sum(len(r.steering) for r in reports),
        steering_failed=sum(1 for r in reports for p in r.steering if p.error),
        pathway_moves=sum(1 for r in reports for a, b in zip(r.decisions, r.decisions[1:]) if a.pathway != b.pathway),
        segment_failovers=sum(len(d.failovers) for r in reports for d in r.decisions),
        startup_failovers=sum(len(r.startup_failovers) for r in reports))


def played_kbps(report: PlaybackReport) -> float | None:
    """Bits fetched for the media kept in the buffer, over its duration (video + audio)."""
    kept = [d for d in report.decisions if not d.discarded]
    media = sum(d.media_s for d in kept)
    return sum(d.size_bytes for d in kept) * 8 / 1000 / media if media > 0 else None


def render_table(s: LoadSummary) -> str:
    def ms(d: dict[str, float | None]) -> str:
        return " / ".join("-" if v is None else f"{v:.0f}" for v in d.values())

    def sec(d: dict[str, float | None]) -> str:
        return " / ".join("-" if v is None else f"{v:.2f}" for v in d.values())

    rows = [("players", str(s.players)), ("sessions started", str(s.started)),
            ("sessions completed", str(s.completed)), ("sessions failed", str(s.failed)),
            ("errors", ", ".join(f"{k}: {v}" for k, v in sorted(s.errors.items())) or "none"),
            ("start-up p50 / p90 / p99 (s, virtual)", sec(s.startup_s)),
            ("manifest p50 / p90 / p99 (ms)", ms(s.manifest_ms)),
            ("license p50 / p90 / p99 (ms)", ms(s.license_ms)),
            ("rebuffer ratio", f"{100 * s.rebuffer_ratio:.2f} % ({s.stall_s:.1f} s stalled, {s.play_s:.1f} s played)"),
            ("bitrate played (kbit/s, mean of sessions)", "-" if s.avg_bitrate_kbps is None else f"{s.avg_bitrate_kbps:.0f}"),
            ("segments decrypted and checked", str(s.segments_verified)), ("heartbeats posted", str(s.heartbeats)),
            ("chunks per edge node", ", ".join(f"{k}: {v}" for k, v in sorted(s.edge_nodes.items())) or "-"),
            ("steering polls (failed) / pathway moves", f"{s.steering_polls} ({s.steering_failed}) / {s.pathway_moves}"),
            ("segments retried on the next pathway", str(s.segment_failovers)),
            ("session starts moved to the next pathway", str(s.startup_failovers)),
            ("wall time (s)", f"{s.wall_s:.1f}")]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def json_line(s: LoadSummary) -> str:
    return json.dumps(s.as_json(), sort_keys=True)


# --------------------------------------------------------------------------- the run


class LoadSetupFailed(ReelStreamError):
    """Accounts could not be created, signed in or licensed before the run; nothing was played."""


async def create_accounts(http: Http, base: str, count: int, country: str) -> list[tuple[Account, str]]:
    """``count`` new accounts (unique emails); returns (account, account_id)."""
    run = uuid.uuid4().hex[:8]
    accounts = [Account(f"load-{run}-{i}@reelstream.invalid", f"load-{run}-{uuid.uuid4().hex}") for i in range(count)]
    try:
        ids = await asyncio.gather(*(gateway.sign_up(http, base, a.email, a.password, country) for a in accounts))
    except RequestFailed as e:
        raise LoadSetupFailed(f"could not create the load accounts: {e}") from e
    return list(zip(accounts, ids, strict=True))


async def sign_in_players(http: Http, config: LoadConfig, accounts: Sequence[Account]) -> list[gateway.Device]:
    """One device per player, the accounts used round robin (mind the stream limit per account)."""
    if not accounts:
        raise LoadSetupFailed("no accounts to play with: give --accounts or let reel load create them")
    try:
        return list(await asyncio.gather(*(
            gateway.sign_in(http, config.gateway, accounts[i % len(accounts)].email,
                            accounts[i % len(accounts)].password, device_type=config.device_type,
                            security_level=config.security_level) for i in range(config.players))))
    except RequestFailed as e:
        raise LoadSetupFailed(f"could not sign the players in: {e}") from e


async def wait_until_licensed(http: Http, config: LoadConfig, devices: Sequence[gateway.Device],
                              timeout_s: float) -> None:
    """Until every account's subscription reaches the license server (granted through the
    log, it takes the processors a moment): each device asks for the title's keys."""
    from reelstream.player.client.session import open_manifest

    pending = {d.account_id: d for d in devices}
    deadline = asyncio.get_running_loop().time() + timeout_s
    probe = PlayerConfig(gateway=config.gateway, title_id=config.title_id, device=devices[0], trace=config.traces[0])
    while pending:
        for account_id, device in list(pending.items()):
            presentation, _, _ = await open_manifest(http, config.gateway, device.token, probe)
            kids = {r.key_id for r in presentation.video + presentation.audio if r.key_id}
            if presentation.license_url is None or not kids:
                raise LoadSetupFailed("the probe manifest names no license server or key ids")
            try:
                await clearkey_license(http, presentation.license_url, kids)
                del pending[account_id]
            except RequestFailed as e:
                if e.status != 403:
                    raise LoadSetupFailed(f"probe license for account {account_id}: {e}") from e
        if pending and asyncio.get_running_loop().time() > deadline:
            raise LoadSetupFailed(f"{len(pending)} account(s) still not entitled after {timeout_s:.0f} s "
                                  "(are the stream processors running?)")
        if pending:
            await asyncio.sleep(0.5)


async def run_load(http: Http, config: LoadConfig, devices: Sequence[gateway.Device]) -> list[Outcome]:
    """Play ``config.players`` sessions concurrently; each player's error is its own outcome."""
    return list(await asyncio.gather(*(_one(http, config, i, devices[i]) for i in range(config.players))))


def error_kind(e: ReelStreamError) -> str:
    """How the summary groups a failed session: the request and its status, or, when no
    server answered, where it went and how it failed (a wrong --edge is one line that says so)."""
    if not isinstance(e, RequestFailed):
        return type(e).__name__
    if e.status:
        return f"{e.what} {e.status}"
    cause = e.detail.split(":", 1)[0] or "no answer"
    return f"{e.what}: no answer from {urlsplit(e.url).netloc} ({cause})"


async def _one(http: Http, config: LoadConfig, index: int, device: gateway.Device) -> Outcome:
    trace = config.traces[index % len(config.traces)]
    if config.ramp_s and config.players > 1:
        await asyncio.sleep(config.ramp_s * index / (config.players - 1))  # real time: spreads load on the servers
    fmt = config.format if config.format != "mixed" else ("hls" if index % 2 else "dash")
    try:
        report = await play(http, PlayerConfig(
            gateway=config.gateway, title_id=config.title_id, device=device, trace=trace, format=fmt,
            abr=config.abr, max_play_s=config.play_s, start_at_s=config.start_at_s, edge=config.edge))
    except ReelStreamError as e:
        return Outcome(index, trace.name, getattr(e, "report", None), str(e), error_kind(e))
    except Exception as e:  # one player's bug is its error, not the end of the run
        log.exception("player %d (trace %s) failed unexpectedly", index, trace.name)
        return Outcome(index, trace.name, getattr(e, "report", None), f"{type(e).__name__}: {e}",
                       f"unexpected {type(e).__name__}")
    return Outcome(index, trace.name, report)
