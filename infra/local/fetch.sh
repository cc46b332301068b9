#!/usr/bin/env bash
# Fetch the local servers into ${REEL_RUN_DIR:-<repo>/.run}/dist/.
#   infra/local/fetch.sh [kafka|cassandra|s3|all ...] [--force]
# Skips a server already fetched with the same pinned versions.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

targets=() force=0
for a in "$@"; do
  case "$a" in
    --force) force=1 ;;
    -h | --help) sed -n '2,4p' "$0"; exit 0 ;;
    *) targets+=("$a") ;;
  esac
done

services="$(expand_services "${targets[@]}")"
for svc in $services; do
  with_lock "$svc"
  if ((force == 0)) && "svc_${svc}_fetched"; then
    info "$svc: already fetched ($DIST_DIR)"
    continue
  fi
  t0="$(now_s)"
  "svc_${svc}_fetch"
  info "$svc: fetched in $(elapsed_since "$t0") s"
done
