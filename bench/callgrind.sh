#!/usr/bin/env bash
# Instructions per proxied request, counted by valgrind's callgrind: a figure that stays the
# same from run to run on a shared, noisy machine, unlike times. Use it to tell whether a
# change to the request path made tollgate do less work.
#
#   bench/callgrind.sh [TOLLGATE_BINARY]     (default: builds target/release/tollgate)
#
# For d (public route) and e (authenticated route, N distinct users and tokens) it starts an
# nginx upstream and tollgate under callgrind with instrumentation off, registers and logs
# in the users, warms up, then counts instructions only while wrk sends 16 connections'
# worth of requests for a few seconds, and prints total instructions / requests. The count
# covers tollgate's user-space code (not the kernel). Needs nginx, wrk and valgrind
# (bench/run.sh installs the first two; `apt-get install valgrind`).
# Knobs: CG_USERS (200), CG_SECONDS (8), CG_SETTLE (16: seconds between logging the users in
# and counting, so that the user change feed's look-back no longer covers their creation).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
export BENCH_LUA=$BENCH/wrk
USERS=${CG_USERS:-200} SECONDS_=${CG_SECONDS:-8} SETTLE=${CG_SETTLE:-16}
for tool in nginx wrk valgrind callgrind_control; do
  command -v "$tool" >/dev/null || [[ -x /usr/sbin/$tool ]] || { echo "callgrind.sh: $tool is missing" >&2; exit 1; }
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
if [[ -n ${1:-} ]]; then
  TG=$(realpath "$1") # tollgate runs in its work directory
else
  (cd "$ROOT" && cargo build --release --bin tollgate)
  TG=${CARGO_TARGET_DIR:-$ROOT/target}/release/tollgate
fi

# shellcheck source=lib/upstream.sh
source "$BENCH/lib/upstream.sh"
# shellcheck source=lib/tollgate_conf.sh
source "$BENCH/lib/tollgate_conf.sh"
upstream_setup callgrind
tollgate_conf "$WORK" "$P_GW" "$P_ADMIN" '[login]
[login.argon2]
memory_kib = 1024
iterations = 1'

# count LABEL PATH: one tollgate under callgrind, counting only during the measured wrk run
count() {
  local label=$1 path=$2 pid requests total
  rm -f "$WORK"/tollgate.db* "$WORK"/cg.out*
  (cd "$WORK" && exec valgrind --tool=callgrind --instr-atstart=no \
    --callgrind-out-file="$WORK/cg.out" "$TG" serve --config "$WORK/tollgate.toml" \
    >"$WORK/out" 2>"$WORK/err") &
  pid=$!
  PIDS+=("$pid")
  for _ in $(seq 600); do grep -q "listening" "$WORK/out" 2>/dev/null && break; sleep 0.1; done
  grep -q "listening" "$WORK/out" || { cat "$WORK/err" >&2; exit 1; }
  python3 "$BENCH/lib/users.py" "http://127.0.0.1:$P_GW" "$USERS" "$WORK/tokens.txt" >/dev/null
  local url="http://127.0.0.1:$P_GW$path"
  wrk -t1 -c16 -d3s -s "$BENCH_LUA/bearer.lua" "$url" -- "$WORK/tokens.txt" >/dev/null
  sleep "$SETTLE"
  callgrind_control -i on "$pid" >/dev/null
  wrk -t1 -c16 -d"${SECONDS_}s" -s "$BENCH_LUA/bearer.lua" "$url" -- "$WORK/tokens.txt" >"$WORK/wrk.log"
  callgrind_control -i off "$pid" >/dev/null
  callgrind_control -d "$pid" >/dev/null
  kill -TERM "$pid"
  wait "$pid" 2>/dev/null || true
  requests=$(grep -oP '^\s*\K[0-9]+(?= requests in)' "$WORK/wrk.log")
  grep -q "Non-2xx" "$WORK/wrk.log" && { cat "$WORK/wrk.log" >&2; echo "callgrind.sh: non-2xx responses" >&2; exit 1; }
  total=$(cat "$WORK"/cg.out* | grep -oP '^totals: \K[0-9]+' | awk '{s += $1} END {print s}')
  printf '%-32s %8d requests  %12d instructions  %7d per request\n' "$label" "$requests" "$total" $((total / requests))
}

count "d. tollgate, public route" /public
count "e. tollgate, authenticated route" /
