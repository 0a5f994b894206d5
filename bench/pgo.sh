#!/usr/bin/env bash
# Builds tollgate with profile-guided optimisation (PGO) and prints the binary's path.
#
#   bench/pgo.sh            -> target/pgo/release/tollgate
#
# 1. An instrumented release build (target/pgo-gen) serves a training load: users register
#    and log in, then signed-in requests (Bearer tokens of many users and sessions) and
#    public requests go through it to an nginx upstream, at 1 and 16 connections.
# 2. llvm-profdata merges what it recorded.
# 3. The release build proper (target/pgo) is compiled with that profile, so the compiler
#    lays out and inlines code for the paths a gateway actually runs. The source and
#    its behaviour are the same as `cargo build --release`; only code placement and
#    optimisation choices differ.
#
# Needs nginx, wrk and python3 (bench/run.sh installs the first two) and the llvm-profdata
# of the LLVM that rustc uses (`rustc -vV`); on Debian that is the package llvm-NN, which
# this script installs when it is missing. Knob: PGO_TRAIN_SECONDS (8).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
export BENCH_LUA=$BENCH/wrk
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
TRAIN_S=${PGO_TRAIN_SECONDS:-8}
log() { echo "pgo: $*" >&2; }

llvm=$(rustc -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')
PROFDATA=$(command -v "llvm-profdata-$llvm" || true)
if [[ -z $PROFDATA ]]; then
  log "installing llvm-$llvm (for llvm-profdata)"
  sudo=()
  ((EUID == 0)) || sudo=(sudo)
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends "llvm-$llvm" >&2
  PROFDATA=$(command -v "llvm-profdata-$llvm")
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
for tool in "$NGINX" wrk python3 curl; do
  command -v "$tool" >/dev/null || { log "$tool is missing (bench/run.sh installs nginx and wrk)"; exit 1; }
done

WORK=$(mktemp -d /tmp/tollgate-pgo.XXXXXX)
# shellcheck source=lib/upstream.sh
source "$BENCH/lib/upstream.sh"

log "instrumented build"
(cd "$ROOT" && CARGO_TARGET_DIR=$TARGET/pgo-gen RUSTFLAGS="-Cprofile-generate=$WORK/raw" \
  cargo build --release --bin tollgate >&2)
TG=$TARGET/pgo-gen/release/tollgate

mapfile -t PORTS < <(python3 "$BENCH/lib/benchlib.py" ports 3)
read -r P_UP P_GW P_ADMIN <<<"${PORTS[*]}"
upstream_start "$P_UP"

# shellcheck source=lib/tollgate_conf.sh
source "$BENCH/lib/tollgate_conf.sh"
tollgate_conf "$WORK/gw" "$P_GW" "$P_ADMIN" '[login]
[login.argon2]
memory_kib = 1024
iterations = 1'
(cd "$WORK/gw" && exec "$TG" serve --config "$WORK/gw/tollgate.toml" >"$WORK/gw/out" 2>"$WORK/gw/err") &
gw=$!
for _ in $(seq 300); do curl -s -o /dev/null "http://127.0.0.1:$P_GW/public" && break; sleep 0.1; done

log "training: logins, then signed-in and public requests"
python3 "$BENCH/lib/users.py" "http://127.0.0.1:$P_GW" 500 "$WORK/tokens.txt" >/dev/null
for conns in 16 1; do
  for path in / /public; do
    wrk -t1 -c"$conns" -d"${TRAIN_S}s" -s "$BENCH_LUA/bearer.lua" "http://127.0.0.1:$P_GW$path" \
      -- "$WORK/tokens.txt" >"$WORK/wrk.log"
    grep -q "Non-2xx" "$WORK/wrk.log" && { cat "$WORK/wrk.log" >&2; log "training got errors"; exit 1; }
  done
done
# The profile is written when the process exits.
kill -TERM "$gw"
wait "$gw" || true
ls "$WORK"/raw/*.profraw >/dev/null || { log "no profile was written"; exit 1; }
"$PROFDATA" merge -o "$WORK/merged.profdata" "$WORK"/raw/*.profraw

log "optimised build"
(cd "$ROOT" && CARGO_TARGET_DIR=$TARGET/pgo RUSTFLAGS="-Cprofile-use=$WORK/merged.profdata" \
  cargo build --release --bin tollgate >&2)
echo "$TARGET/pgo/release/tollgate"
