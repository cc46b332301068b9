# shellcheck shell=bash
# S3Proxy (Apache-2.0): a real S3 API server, here with jclouds' filesystem-nio2 backend.
# Sourced by infra/local/lib.sh; defines svc_s3_* functions.

_s3_hostport="${REEL_S3_ENDPOINT#*://}"
_s3_hostport="${_s3_hostport%%/*}"
S3_HOST="${_s3_hostport%:*}"
S3_PORT="${_s3_hostport##*:}"
unset _s3_hostport
S3_HEAP="${REEL_S3_HEAP:-384m}"
S3_DIST="$DIST_DIR/s3"
S3_DATA="$DATA_DIR/s3"
S3_CONF="$CONF_DIR/s3"

svc_s3_ports() { echo "$S3_PORT"; }
svc_s3_settings() { echo "REEL_S3_ENDPOINT"; }
svc_s3_host() { echo "$S3_HOST"; }
svc_s3_start_timeout() { echo "${REEL_S3_START_TIMEOUT:-60}"; }
svc_s3_stop_timeout() { echo 20; }

# svc_s3_preflight : env.sh's credentials are published (in this repository), so they are
# for a server on the loopback only; bound anywhere else, the server would be open to whoever
# reads them. Kept on the loopback for tests and CI: a per-install pair would have to reach
# every client (tests, healthcheck.py, checks/, `reel --s3`) for no gain, since whoever can
# connect to the loopback can usually read <run>/ too.
svc_s3_preflight() {
  case "$S3_HOST" in 127.* | localhost | ::1 | '[::1]') return 0 ;; esac
  if [[ -z "${REEL_S3_ACCESS_KEY:-}" || -z "${REEL_S3_SECRET_KEY:-}" || "$REEL_S3_ACCESS_KEY" == reelstream
        || "$REEL_S3_SECRET_KEY" == reelstream-secret ]]; then
    die "s3: refusing to listen on $S3_HOST (not the loopback) with empty or env.sh's well-known credentials (reelstream / reelstream-secret): set REEL_S3_ACCESS_KEY and REEL_S3_SECRET_KEY to your own (\`reel secrets\` prints a generated pair), or keep REEL_S3_ENDPOINT on 127.0.0.1"
  fi
}

svc_s3_fetched() { [[ -f "$S3_DIST/.fetched" ]] && cmp -s "$INFRA_DIR/s3/pom.xml" "$S3_DIST/.fetched"; }

svc_s3_fetch() {
  require_java17
  info "s3: fetching S3Proxy with Maven (infra/local/s3/pom.xml)"
  mvn_fetch "$INFRA_DIR/s3/pom.xml" "$S3_DIST/lib"
  cp "$INFRA_DIR/s3/pom.xml" "$S3_DIST/.fetched"
}

svc_s3_start() {
  require_java17
  export S3_HOST S3_PORT S3_DATA
  export S3_ACCESS_KEY="$REEL_S3_ACCESS_KEY" S3_SECRET_KEY="$REEL_S3_SECRET_KEY"
  mkdir -p "$S3_DATA/blobs" "$S3_CONF"
  render "$INFRA_DIR/s3/s3proxy.properties.in" "$S3_CONF/s3proxy.properties"
  chmod 600 "$S3_CONF/s3proxy.properties"
  launch s3 java \
    -Dreelstream.service=s3 \
    -Xms64m -Xmx"$S3_HEAP" -XX:+UseSerialGC -XX:ActiveProcessorCount=2 \
    -XX:MaxDirectMemorySize=256m \
    -DLOG_LEVEL=info \
    -jar "$(compgen -G "$S3_DIST/lib/s3proxy-*.jar" | head -n1)" \
    --properties "$S3_CONF/s3proxy.properties"
}

# svc_s3_health : an authenticated ListBuckets must answer
svc_s3_health() {
  port_open "$S3_HOST" "$S3_PORT" || return 1
  local py
  py="$(health_python)"
  if [[ -n "$py" ]] && "$py" -c 'import boto3' 2> /dev/null; then
    "$py" "$INFRA_DIR/healthcheck.py" s3
  else
    # no venv: an anonymous request must get an S3 XML answer (403 AccessDenied)
    curl -s --max-time 5 "$REEL_S3_ENDPOINT/" | grep -q '<Error>'
  fi
}

svc_s3_wipe() { rm -rf "$S3_DATA"; }
