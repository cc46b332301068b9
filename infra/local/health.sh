#!/usr/bin/env bash
# Exit 0 only when every named server answers a real request.
#   infra/local/health.sh [kafka|cassandra|s3|all ...] [-q]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

targets=() quiet=0
for a in "$@"; do
  case "$a" in
    -q | --quiet) quiet=1 ;;
    -h | --help) sed -n '2,3p' "$0"; exit 0 ;;
    *) targets+=("$a") ;;
  esac
done

rc=0
services="$(expand_services "${targets[@]}")"
for svc in $services; do
  pid="$(service_pid "$svc" || true)"
  if ((quiet)); then
    "svc_${svc}_health" > /dev/null 2>&1 && ok=1 || ok=0
  else
    "svc_${svc}_health" && ok=1 || ok=0
  fi
  if ((ok)); then
    ((quiet)) || info "$svc: healthy${pid:+ (pid $pid)}"
  else
    if ((quiet == 0)); then
      if [[ -n "$pid" ]]; then
        info "$svc: NOT healthy (pid $pid is running; log: $LOG_DIR/$svc.log)"
      else
        info "$svc: NOT healthy (no server started by start.sh is running)"
      fi
    fi
    rc=1
  fi
done
exit "$rc"
