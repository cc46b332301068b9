#!/usr/bin/env bash
# Start the local servers in the background (fetching them first if needed).
#   infra/local/start.sh [kafka|cassandra|s3|all ...]
# Idempotent: a server already running and healthy is left alone.
# Logs: <run>/logs/<name>.log, pids: <run>/pids/<name>.pid, data: <run>/data/<name>/
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

case "${1:-all}" in -h | --help) sed -n '2,5p' "$0"; exit 0 ;; esac

declare -A PIDS=() READY=()

# launch_one NAME : fetch if needed and start the server, unless it already runs
launch_one() {
  local svc="$1" pid host t0 p holder
  host="$("svc_${svc}_host")"
  # Settings a server must not start with (checked before any fetch or lock).
  if declare -F "svc_${svc}_preflight" > /dev/null; then "svc_${svc}_preflight"; fi
  with_lock "$svc"
  clear_stale_pid "$svc"

  if pid="$(service_pid "$svc")"; then
    check_running_matches "$svc" "$pid" "$host"
    if "svc_${svc}_health" 2> /dev/null; then
      info "$svc: already running (pid $pid) and healthy"
      READY[$svc]=1
    else
      info "$svc: running (pid $pid) but not healthy yet"
    fi
    PIDS[$svc]="$pid"
    return 0
  fi
  for p in $("svc_${svc}_ports"); do
    if port_open "$host" "$p"; then
      holder="$(port_holder "$p")"
      die "$svc: port $host:$p is already in use by ${holder:-another process}, not by a server this script started. Stop that process, or give ReelStream's $svc other ports ($(svc_settings_hint "$svc"); see infra/local/env.sh)."
    fi
  done
  if ! "svc_${svc}_fetched"; then
    t0="$(now_s)"
    "svc_${svc}_fetch"
    info "$svc: fetched in $(elapsed_since "$t0") s"
  fi
  mkdir -p "$DATA_DIR/$svc"
  "svc_${svc}_start"
  pid="$(tr -dc '0-9' < "$(pid_file "$svc")")"
  echo "$host $("svc_${svc}_ports")" > "$(ports_file "$svc")"
  PIDS[$svc]="$pid"
  STARTED_AT[$svc]="$(now_s)"
  info "$svc: started pid $pid (log: $LOG_DIR/$svc.log)"
}

svc_settings_hint() { # svc_settings_hint NAME -> "VAR=value ..." of the settings that place it
  local v out=()
  for v in $("svc_${1}_settings"); do out+=("$v=${!v}"); done
  echo "now ${out[*]}"
}

# check_running_matches NAME PID HOST : the server this script started earlier runs, so
# waiting for it only makes sense when it was started on the ports asked for now and no
# other process holds one of them; otherwise it would never turn healthy there, and the
# start would wait its whole timeout. Fails at once, saying what holds what.
check_running_matches() {
  local svc="$1" pid="$2" host="$3" want launched listening p holder
  want="$host $("svc_${svc}_ports")"
  launched="$(cat "$(ports_file "$svc")" 2> /dev/null || true)"
  if [[ -z "$launched" ]]; then  # started before the ports were recorded: ask ss what it listens on
    listening="$(listening_ports "$pid" | tr '\n' ' ')"
    launched="$want"
    for p in $("svc_${svc}_ports"); do
      if [[ -n "$listening" && " $listening" != *" $p "* ]]; then launched="$host ${listening% }"; fi
    done
  fi
  if [[ "$launched" != "$want" ]]; then
    die "$svc: the server this script started earlier runs ($(describe_pid "$pid")) on $(where "$launched"), not on $(where "$want") as asked now ($(svc_settings_hint "$svc")). Use that one (set the settings it was started with), or stop it first: infra/local/stop.sh $svc"
  fi
  for p in $("svc_${svc}_ports"); do
    holder="$(port_holder_pid "$p")"
    if [[ -n "$holder" && "$holder" != "$pid" ]] && ! is_descendant "$holder" "$pid"; then
      die "$svc: port $host:$p is held by $(describe_pid "$holder"), not by the $svc server this script started (pid $pid), which cannot serve there. Stop pid $holder, or stop ours (infra/local/stop.sh $svc) and give $svc other ports ($(svc_settings_hint "$svc"))."
    fi
  done
}

where() { # where "HOST PORT..." -> "HOST port(s) PORT, PORT"
  local -a w
  read -r -a w <<< "$1"
  local IFS=,
  echo "${w[0]} port(s) ${w[*]:1}"
}

is_descendant() { # is_descendant PID ANCESTOR
  local p="$1"
  while [[ -n "$p" && "$p" != 0 && "$p" != 1 ]]; do
    [[ "$p" == "$2" ]] && return 0
    p="$(awk '{ print $4 }' "/proc/$p/stat" 2> /dev/null || true)"
  done
  return 1
}

# wait_one NAME : wait until healthy; on failure show the log and exit non-zero
wait_one() {
  local svc="$1" pid="${PIDS[$1]}" timeout t0
  [[ -n "${READY[$svc]:-}" ]] && return 0
  timeout="$("svc_${svc}_start_timeout")"
  t0="${STARTED_AT[$svc]:-$(now_s)}"
  while true; do
    if ! kill -0 "$pid" 2> /dev/null; then
      tail_log "$svc" 40
      rm -f "$(pid_file "$svc")"
      die "$svc: the server process exited during startup (see the log above: $LOG_DIR/$svc.log)"
    fi
    if "svc_${svc}_health" 2> /dev/null; then
      info "$svc: healthy $(elapsed_since "$t0") s after start (pid $pid)"
      return 0
    fi
    if awk -v a="$t0" -v b="$(now_s)" -v t="$timeout" 'BEGIN { exit !(b - a > t) }'; then
      tail_log "$svc" 40
      die "$svc: not healthy ${timeout} s after start; it is still running as pid $pid (stop it with infra/local/stop.sh $svc)"
    fi
    sleep 1
  done
}

declare -A STARTED_AT=()
services="$(expand_services "$@")"

# A server this run launched is stopped again when a later one fails (a port taken, a
# start-up that dies): a failed start leaves nothing running that it started.
stop_launched_on_failure() {
  local status=$? launched=("${!STARTED_AT[@]}")
  if ((status != 0 && ${#launched[@]})); then
    info "stopping what this run started: ${launched[*]}"
    for svc in "${launched[@]}"; do  # here, not by stop.sh: this process holds their locks
      stop_service_process "$svc" "$("svc_${svc}_stop_timeout")" || true
    done
  fi
  return "$status"
}
trap stop_launched_on_failure EXIT

# launch every server first, then wait: the JVMs start side by side
for svc in $services; do
  launch_one "$svc"
done
for svc in $services; do
  wait_one "$svc"
done
