#!/usr/bin/env bash
# Stop the local servers: SIGTERM, then SIGKILL after a timeout.
#   infra/local/stop.sh [kafka|cassandra|s3|all ...] [--wipe]
# --wipe also deletes the data of the named servers (<run>/data/<name>/).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

targets=() wipe=0
for a in "$@"; do
  case "$a" in
    --wipe) wipe=1 ;;
    -h | --help) sed -n '2,4p' "$0"; exit 0 ;;
    *) targets+=("$a") ;;
  esac
done

services="$(expand_services "${targets[@]}")"
for svc in $services; do
  with_lock "$svc"
  if service_pid "$svc" > /dev/null; then
    stop_service_process "$svc" "$("svc_${svc}_stop_timeout")"
  else
    rm -f "$(pid_file "$svc")"
    info "$svc: not running"
  fi
  if ((wipe)); then
    "svc_${svc}_wipe"
    info "$svc: data wiped"
  fi
done
