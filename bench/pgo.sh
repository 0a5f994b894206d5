#!/usr/bin/env bash
# Builds tollgate with profile-guided optimisation (PGO), then lays its code out by how the
# optimised build runs (BOLT), and prints the binary's path.
#
#   bench/pgo.sh            -> target/pgo/release/tollgate-bolt (PGO_BOLT=0: target/pgo/release/tollgate)
#
# 1. An instrumented release build (target/pgo-gen) serves a training load: users register
#    and log in, then signed-in requests (Bearer tokens of many users and sessions) and
#    public requests go through it to an nginx upstream, at 1 and 16 connections.
# 2. llvm-profdata merges what it recorded.
# 3. The release build proper (target/pgo) is compiled with that profile, so the compiler
#    inlines and optimises for the paths a gateway actually runs. It is linked with its
#    relocations kept (`--emit-relocs`), which lets step 4 move whole functions.
# 4. BOLT instruments that binary, the same training load runs through it, and BOLT writes
#    the binary again with the hot code of all functions packed together and each
#    function's hot blocks in the order they run. A proxied request runs code from many
#    crates; packed, it fits in fewer cache lines and pages.
# The source and its behaviour are the same as `cargo build --release`; only code placement
# and optimisation choices differ.
#
# Needs nginx, wrk and python3 (bench/run.sh installs the first two), and the llvm-profdata
# and llvm-bolt of the LLVM that rustc uses (`rustc -vV`); on Debian those are the packages
# llvm-NN and bolt-NN, which this script installs when they are missing.
# Knobs: PGO_TRAIN_SECONDS (8), PGO_BOLT (1).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
export BENCH_LUA=$BENCH/wrk
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
TRAIN_S=${PGO_TRAIN_SECONDS:-8}
BOLT=${PGO_BOLT:-1}
log() { echo "pgo: $*" >&2; }

llvm=$(rustc -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')
# need TOOL PACKAGE: the path of TOOL-$llvm, installing PACKAGE-$llvm when it is missing
need() {
  local tool
  tool=$(command -v "$1-$llvm" || true)
  if [[ -z $tool ]]; then
    log "installing $2-$llvm (for $1)"
    local sudo=()
    ((EUID == 0)) || sudo=(sudo)
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends "$2-$llvm" >&2
    tool=$(command -v "$1-$llvm")
  fi
  echo "$tool"
}
PROFDATA=$(need llvm-profdata llvm)
if ((BOLT)); then
  LLVM_BOLT=$(need llvm-bolt bolt)
  MERGE_FDATA=$(need merge-fdata bolt)
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
for tool in "$NGINX" wrk python3 curl; do
  command -v "$tool" >/dev/null || { log "$tool is missing (bench/run.sh installs nginx and wrk)"; exit 1; }
done

# shellcheck source=lib/upstream.sh
source "$BENCH/lib/upstream.sh"
# shellcheck source=lib/tollgate_conf.sh
source "$BENCH/lib/tollgate_conf.sh"
upstream_setup pgo

# train BINARY: the training load through BINARY, which writes its profile when it exits.
train() {
  local bin=$1 dir=$WORK/gw gw conns path
  rm -rf "$dir"
  TG=$bin tollgate_conf "$dir" "$P_GW" "$P_ADMIN" '[login]
[login.argon2]
memory_kib = 1024
iterations = 1'
  (cd "$dir" && exec "$bin" serve --config "$dir/tollgate.toml" >"$dir/out" 2>"$dir/err") &
  gw=$!
  for _ in $(seq 300); do curl -s -o /dev/null "http://127.0.0.1:$P_GW/public" && break; sleep 0.1; done
  python3 "$BENCH/lib/users.py" "http://127.0.0.1:$P_GW" 500 "$WORK/tokens.txt" >/dev/null
  for conns in 16 1; do
    for path in / /public; do
      wrk -t1 -c"$conns" -d"${TRAIN_S}s" -s "$BENCH_LUA/bearer.lua" "http://127.0.0.1:$P_GW$path" \
        -- "$WORK/tokens.txt" >"$WORK/wrk.log"
      grep -q "Non-2xx" "$WORK/wrk.log" && { cat "$WORK/wrk.log" >&2; log "training got errors"; exit 1; }
    done
  done
  kill -TERM "$gw"
  wait "$gw" || true
}

# The profile path is fixed, so a second run rebuilds only what changed.
RAW=$TARGET/pgo-gen/profraw
log "instrumented build"
(cd "$ROOT" && CARGO_TARGET_DIR=$TARGET/pgo-gen RUSTFLAGS="-Cprofile-generate=$RAW" \
  cargo build --release --bin tollgate >&2)
rm -f "$RAW"/*.profraw
log "training: logins, then signed-in and public requests"
train "$TARGET/pgo-gen/release/tollgate"
ls "$RAW"/*.profraw >/dev/null || { log "no profile was written"; exit 1; }
# A new path each time, so cargo builds again with the new profile.
PROFILE=$WORK/merged.profdata
"$PROFDATA" merge -o "$PROFILE" "$RAW"/*.profraw

log "optimised build"
(cd "$ROOT" && CARGO_TARGET_DIR=$TARGET/pgo \
  RUSTFLAGS="-Cprofile-use=$PROFILE -Clink-arg=-Wl,--emit-relocs" \
  cargo build --release --bin tollgate >&2)
OPT=$TARGET/pgo/release/tollgate
if ! ((BOLT)); then
  echo "$OPT"
  exit 0
fi

log "BOLT: instrumenting the optimised build, training it, laying it out"
"$LLVM_BOLT" "$OPT" -o "$WORK/tollgate.inst" -instrument \
  -instrumentation-file="$WORK/bolt/prof" -instrumentation-file-append-pid >"$WORK/bolt.log" 2>&1 ||
  { cat "$WORK/bolt.log" >&2; exit 1; }
mkdir -p "$WORK/bolt"
train "$WORK/tollgate.inst"
ls "$WORK"/bolt/prof.* >/dev/null || { log "BOLT wrote no profile"; exit 1; }
"$MERGE_FDATA" "$WORK"/bolt/prof.* >"$WORK/bolt.fdata" 2>/dev/null
"$LLVM_BOLT" "$OPT" -o "$OPT-bolt" -data="$WORK/bolt.fdata" \
  -reorder-blocks=ext-tsp -reorder-functions=cdsort -split-functions -split-all-cold \
  -split-eh -icf=1 -use-gnu-stack -dyno-stats >"$WORK/bolt.log" 2>&1 ||
  { cat "$WORK/bolt.log" >&2; exit 1; }
grep -E "BOLT-INFO: (basic block reordering|.*profile)" "$WORK/bolt.log" | head -3 >&2 || true
echo "$OPT-bolt"
