# shellcheck shell=bash source-path=SCRIPTDIR
# Shared helpers for infra/local/{fetch,start,health,stop}.sh.
# Sourced, never run. The caller sets `set -euo pipefail`.
#
# Layout (everything under ${REEL_RUN_DIR:-<repo>/.run}, which is gitignored):
#   dist/<name>/      fetched jars (+ a .fetched marker)
#   conf/<name>/      configuration generated at each start from infra/local/<name>/
#   data/<name>/      data (deleted by `stop.sh --wipe`)
#   logs/<name>.log   stdout+stderr of the server (previous run kept as <name>.log.1)
#   pids/<name>.pid   pid of the running server

INFRA_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$INFRA_DIR/../.." && pwd)"
RUN_DIR="${REEL_RUN_DIR:-$REPO_ROOT/.run}"
# used by the sourced <svc>/service.sh files
# shellcheck disable=SC2034
{
  DIST_DIR="$RUN_DIR/dist"
  CONF_DIR="$RUN_DIR/conf"
  DATA_DIR="$RUN_DIR/data"
}
LOG_DIR="$RUN_DIR/logs"
PID_DIR="$RUN_DIR/pids"

ALL_SERVICES=(kafka cassandra s3)

# shellcheck source=env.sh
source "$INFRA_DIR/env.sh"

# ---------------------------------------------------------------- messages
info() { printf '[infra] %s\n' "$*" >&2; }
warn() { printf '[infra] WARNING: %s\n' "$*" >&2; }
die() {
  printf '[infra] ERROR: %s\n' "$*" >&2
  exit 1
}

# ---------------------------------------------------------------- arguments
# expand_services [NAME...] -> the named services (none or "all": every one), one per
# line, once each, in start order
expand_services() {
  local arg svc want=()
  (($#)) || set -- all
  for arg in "$@"; do
    case "$arg" in
      all | "") want+=("${ALL_SERVICES[@]}") ;;
      kafka | cassandra | s3) want+=("$arg") ;;
      *) die "unknown service '$arg' (expected one or more of: ${ALL_SERVICES[*]} all)" ;;
    esac
  done
  for svc in "${ALL_SERVICES[@]}"; do
    if [[ " ${want[*]} " == *" $svc "* ]]; then printf '%s\n' "$svc"; fi
  done
}

# ---------------------------------------------------------------- tools
require_cmd() { # require_cmd CMD "apt package" [what for]
  local cmd="$1" pkg="$2" why="${3:-}"
  if ! command -v "$cmd" > /dev/null 2>&1; then
    die "'$cmd' is not installed${why:+ (needed $why)}. Install it with: apt-get install -y $pkg"
  fi
}

require_java17() {
  require_cmd java openjdk-17-jre-headless "to run the servers"
  local v
  v="$(java -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/ {print $2; exit}')"
  case "$v" in
    17 | 18 | 19 | 20 | 21) ;;
    *) die "Java 17 is required (found java.specification.version='${v:-unknown}'). Install it with: apt-get install -y openjdk-17-jre-headless" ;;
  esac
}

# Python used for health checks: $REEL_HEALTH_PYTHON when set ("none" = no Python),
# else the repo venv when it exists, else none (then the checks use ports, logs and Java tools).
health_python() {
  if [[ -n "${REEL_HEALTH_PYTHON:-}" ]]; then
    [[ "$REEL_HEALTH_PYTHON" == none ]] || printf '%s\n' "$REEL_HEALTH_PYTHON"
  elif [[ -x "$REPO_ROOT/.venv/bin/python" ]]; then
    printf '%s\n' "$REPO_ROOT/.venv/bin/python"
  fi
}

# ---------------------------------------------------------------- ports
port_open() { # port_open HOST PORT -> 0 when something accepts TCP connections
  (exec 3<> "/dev/tcp/$1/$2") > /dev/null 2>&1
}

port_owner() { # best-effort description of who listens on PORT
  ss -ltnpH "sport = :$1" 2> /dev/null | sed -n 's/.*users:((\(.*\)))/\1/p' | head -n1 || true
}

port_holder_pid() { # port_holder_pid PORT -> the pid listening on PORT, when ss can tell
  port_owner "$1" | sed -n 's/.*pid=\([0-9]*\).*/\1/p' | head -n1
}

describe_pid() { # describe_pid PID -> "pid N: its command line" (cut at 120 characters)
  local cmd
  cmd="$(tr '\0' ' ' < "/proc/$1/cmdline" 2> /dev/null | cut -c1-120 || true)"
  printf 'pid %s%s\n' "$1" "${cmd:+: ${cmd% }}"
}

port_holder() { # port_holder PORT -> who holds it, for a message ("" when ss cannot tell)
  local pid
  pid="$(port_holder_pid "$1")"
  if [[ -n "$pid" ]]; then describe_pid "$pid"; else port_owner "$1"; fi
}

listening_ports() { # listening_ports PID -> the TCP ports PID listens on, one per line
  ss -ltnpH 2> /dev/null | awk -v pid="pid=$1," 'index($0, pid) { n = split($4, a, ":"); print a[n] }' | sort -un
}

wait_for_port() { # wait_for_port HOST PORT TIMEOUT_S
  local host="$1" port="$2" timeout="$3" start=$SECONDS
  while ((SECONDS - start < timeout)); do
    port_open "$host" "$port" && return 0
    sleep 0.5
  done
  return 1
}

# ---------------------------------------------------------------- pids
pid_file() { printf '%s/%s.pid\n' "$PID_DIR" "$1"; }
# "HOST PORT..." a server was launched with: a later start compares it with the settings now
ports_file() { printf '%s/%s.ports\n' "$PID_DIR" "$1"; }

# service_pid NAME -> prints the pid when the recorded process is alive and is ours
service_pid() {
  local f pid
  f="$(pid_file "$1")"
  [[ -f "$f" ]] || return 1
  pid="$(tr -dc '0-9' < "$f")"
  [[ -n "$pid" ]] || return 1
  kill -0 "$pid" 2> /dev/null || return 1
  # guard against pid reuse: our servers carry -Dreelstream.service=<name>
  tr '\0' ' ' < "/proc/$pid/cmdline" 2> /dev/null | grep -q -- "-Dreelstream.service=$1 " || return 1
  printf '%s\n' "$pid"
}

clear_stale_pid() {
  local f
  f="$(pid_file "$1")"
  if [[ -f "$f" ]] && ! service_pid "$1" > /dev/null; then
    rm -f "$f" "$(ports_file "$1")"
  fi
}

# launch NAME CMD... : starts CMD detached (own session), stdout/stderr to the log, records the pid
launch() {
  local name="$1"
  shift
  local log="$LOG_DIR/$name.log"
  mkdir -p "$LOG_DIR" "$PID_DIR"
  [[ -f "$log" ]] && mv -f "$log" "$log.1"
  printf '=== %s: starting %s ===\n%s\n' "$(date -Is)" "$name" "$*" > "$log"
  # the server must not inherit the locks of with_lock, or it would hold them forever
  (
    for fd in ${LOCK_FDS:-}; do
      eval "exec $fd>&-"
    done
    exec setsid "$@" >> "$log" 2>&1 < /dev/null
  ) &
  echo $! > "$(pid_file "$name")"
}

tail_log() { # tail_log NAME [LINES]
  local log="$LOG_DIR/$1.log"
  if [[ -f "$log" ]]; then
    printf -- '----- last %s lines of %s -----\n' "${2:-40}" "$log" >&2
    tail -n "${2:-40}" "$log" >&2
    printf -- '----- end of %s -----\n' "$log" >&2
  else
    printf '(no log at %s)\n' "$log" >&2
  fi
}

# stop_pid NAME TIMEOUT_S : SIGTERM, wait, then SIGKILL
stop_service_process() {
  local name="$1" timeout="${2:-60}" pid start
  if ! pid="$(service_pid "$name")"; then
    rm -f "$(pid_file "$name")" "$(ports_file "$name")"
    return 0
  fi
  info "$name: stopping pid $pid (SIGTERM)"
  kill -TERM "$pid" 2> /dev/null || true
  start=$SECONDS
  while kill -0 "$pid" 2> /dev/null && ((SECONDS - start < timeout)); do
    sleep 0.5
  done
  if kill -0 "$pid" 2> /dev/null; then
    warn "$name: still alive after ${timeout}s, sending SIGKILL"
    kill -KILL "$pid" 2> /dev/null || true
    sleep 0.5
  fi
  rm -f "$(pid_file "$name")" "$(ports_file "$name")"
  info "$name: stopped after $((SECONDS - start))s"
}

# ---------------------------------------------------------------- templates
# render TEMPLATE OUT : replaces @VAR@ with the value of shell variable VAR
render() {
  local tpl="$1" out="$2"
  mkdir -p "$(dirname "$out")"
  python3 - "$tpl" "$out" << 'PY'
import os, re, sys
src, dst = sys.argv[1], sys.argv[2]
text = open(src, encoding="utf-8").read()
def sub(m):
    name = m.group(1)
    if name not in os.environ:
        sys.exit(f"render: {src}: variable {name} is not set")
    return os.environ[name]
open(dst, "w", encoding="utf-8").write(re.sub(r"@([A-Z0-9_]+)@", sub, text))
PY
}

# ---------------------------------------------------------------- maven
# mvn_fetch POM OUTDIR : copies the runtime dependencies of POM into OUTDIR
mvn_fetch() {
  local pom="$1" out="$2"
  require_cmd mvn maven "to fetch the server jars from Maven Central"
  require_cmd java openjdk-17-jre-headless "by Maven"
  rm -rf "$out.tmp"
  mkdir -p "$out.tmp"
  # (sed strips the colour resets that mvn -q prints even without a terminal)
  if ! mvn -q -B -Dstyle.color=never -f "$pom" dependency:copy-dependencies -DincludeScope=runtime \
    -DoutputDirectory="$out.tmp" 2>&1 | sed -e 's/\x1b\[[0-9;]*m//g' -e '/^$/d' >&2; then
    rm -rf "$out.tmp"
    die "Maven could not fetch the dependencies of $pom (is Maven Central reachable?)"
  fi
  rm -rf "$out"
  mv "$out.tmp" "$out"
}

# ---------------------------------------------------------------- locking
# with_lock NAME : serialises start/stop of one service across concurrent callers
with_lock() {
  local name="$1" fd
  mkdir -p "$RUN_DIR/locks"
  exec {fd}> "$RUN_DIR/locks/$name.lock"
  LOCK_FDS="${LOCK_FDS:-} $fd"
  if ! flock -w 600 "$fd"; then
    die "$name: could not get the lock $RUN_DIR/locks/$name.lock within 600 s"
  fi
}

now_s() { date +%s.%N; }
elapsed_since() { awk -v a="$1" -v b="$(now_s)" 'BEGIN { printf "%.1f", b - a }'; }

# ---------------------------------------------------------------- services
for _svc in "${ALL_SERVICES[@]}"; do
  # shellcheck source=/dev/null
  source "$INFRA_DIR/$_svc/service.sh"
done
unset _svc
