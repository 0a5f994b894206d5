#!/usr/bin/env bash
# tollgate benchmark: one command, see BENCHMARKS.md for the method and the latest figures.
#
#   bench/run.sh           full run (~40 min on 2 cores): contenders a-e at 1/16/64
#                          connections, 3 x 10 s each, the 1M-sessions memory figure and
#                          the login figures
#   bench/run.sh --smoke   seconds-long end-to-end check for CI: exits non-zero if wrk fails
#                          or any contender answers anything but 2xx
#
# Knobs for trying things out (the defaults are what BENCHMARKS.md reports): BENCH_REPS,
# BENCH_DURATION, BENCH_WARMUP, BENCH_CONNS ("1 16 64"), BENCH_USERS, BENCH_SAMECORE_DURATION,
# BENCH_BACKENDS_WITH_CLIENT, BENCH_QUIET_WAIT_S, BENCH_SESSIONS_BUDGET_S,
# BENCH_SESSIONS_FIRST, BENCH_SESSIONS_FULL, BENCH_LOGIN_RUN_S,
# BENCH_PARTS (comma list of matrix, login, sessions; default all three), BENCH_CONTENDERS
# (default "a b c d e"; the curl checks always cover all five), BENCH_LOGIN_KEPT (0: no
# login-flood runs with the hashing threads kept to one CPU).
# BENCH_HALT_POLL_NS (how long an idle vCPU polls before it halts during the run; default
# 200000, the kernel's own default; "keep" leaves the machine's setting alone).
# BENCH_TOLLGATE_BIN (measure this binary instead of building), BENCH_PGO (1: build with
# profile-guided optimisation through bench/pgo.sh, the default of the full run; 0: a plain
# `cargo build --release`, the default of --smoke).
#
# Results: tables on stdout, JSON in target/bench/latest.json, wrk logs in target/bench/logs.
# Everything listens on 127.0.0.1 only; every load loop is bounded in time.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
OUT=$ROOT/target/bench
LIB=$BENCH/lib/benchlib.py
export BENCH_LUA=$BENCH/wrk # report.lua is loaded from here by every wrk script

SMOKE=0
case "${1:-}" in
  --smoke) SMOKE=1 ;;
  "") ;;
  *) echo "usage: $0 [--smoke]" >&2; exit 2 ;;
esac

if ((SMOKE)); then
  REPS=1 CONNS=(1) DURATION=2 WARMUP=1 N_USERS=20 SAMECORE_DURATION=2
else
  # 5 contenders x 3 connection counts x (5 + 1 + 1 s warm-up + 3 x 10 s) = ~9.5 min of load.
  REPS=${BENCH_REPS:-3} DURATION=${BENCH_DURATION:-10} WARMUP=${BENCH_WARMUP:-5}
  N_USERS=${BENCH_USERS:-1000} SAMECORE_DURATION=${BENCH_SAMECORE_DURATION:-5}
  read -r -a CONNS <<<"${BENCH_CONNS:-1 16 64}"
fi
SESSIONS_BUDGET_S=${BENCH_SESSIONS_BUDGET_S:-600} # the 1M-session fill must fit in this
SESSIONS_FIRST=${BENCH_SESSIONS_FIRST:-100000}     # first point; then 2x, or the full 1M
SESSIONS_FULL=${BENCH_SESSIONS_FULL:-1000000}
QUIET_WAIT_S=${BENCH_QUIET_WAIT_S:-600} # full run: wait at most this long for an idle machine
LOGIN_SECONDS=20
# The login part's quiet and flooded runs: one token re-issue interval (the default 60 s);
# why, where they run.
LOGIN_RUN_S=${BENCH_LOGIN_RUN_S:-60}
CLK_TCK=$(getconf CLK_TCK)

# CPUs: the first two this script may run on (normally 0 and 1). LOAD_CPU takes the load
# generator (wrk) alone; SERVER_CPU the server side of every contender: the proxy under
# test, the upstream, and c's auth server. With a single CPU (a small CI machine) both are
# that CPU: the smoke run still checks everything end to end.
read -r LOAD_CPU SERVER_CPU < <(python3 -c '
import os
cpus = sorted(os.sched_getaffinity(0))
print(cpus[0], cpus[1] if len(cpus) > 1 else cpus[0])')
BOTH_CPUS=$LOAD_CPU,$SERVER_CPU
# BENCH_BACKENDS_WITH_CLIENT=1 puts the upstream and the auth server on LOAD_CPU with wrk,
# as the runs up to ff14f7a did (see BENCHMARKS.md, "Earlier full runs").
BACKEND_CPU=$SERVER_CPU
[[ ${BENCH_BACKENDS_WITH_CLIENT:-0} == 1 ]] && BACKEND_CPU=$LOAD_CPU
if ((LOAD_CPU == SERVER_CPU)); then
  echo "bench: only one CPU available: everything shares CPU $LOAD_CPU" >&2
  BOTH_CPUS=$LOAD_CPU
fi

log() { printf '\n== %s\n' "$*"; }
die() { echo "bench: $*" >&2; exit 1; }

# ---------------------------------------------------------------------------------------
# 1. Tools. Installed only when missing. Debian's maintainer scripts would start the system
#    nginx service; a policy-rc.d answering 101 ("forbidden") prevents that. We only ever
#    run private nginx instances with our own config files.
# ---------------------------------------------------------------------------------------
ensure_tools() {
  local missing=()
  command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || missing+=(nginx)
  command -v wrk >/dev/null || missing+=(wrk)
  command -v pgrep >/dev/null || missing+=(procps)
  command -v taskset >/dev/null || missing+=(util-linux)
  command -v curl >/dev/null || missing+=(curl)
  ((${#missing[@]} == 0)) && return 0
  log "installing ${missing[*]}"
  local sudo=()
  ((EUID == 0)) || sudo=(sudo)
  local policy=/usr/sbin/policy-rc.d created=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
    "${sudo[@]}" chmod 0755 "$policy"
    created=1
  fi
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
  if ((created)); then "${sudo[@]}" rm -f "$policy"; fi
}
ensure_tools
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

# ---------------------------------------------------------------------------------------
# 2. Build once (reuses target/).
# ---------------------------------------------------------------------------------------
PGO=${BENCH_PGO:-$((1 - SMOKE))}
BUILD=release
if [[ -n ${BENCH_TOLLGATE_BIN:-} ]]; then
  # A binary built elsewhere, e.g. an older commit to compare with; tollgate runs in its
  # own work directory, so the path is made absolute.
  TG=$(realpath "$BENCH_TOLLGATE_BIN")
  BUILD="given: $TG"
elif ((PGO)); then
  log "building tollgate (release, profile-guided: bench/pgo.sh)"
  TG=$("$BENCH/pgo.sh")
  BUILD="release, profile-guided (bench/pgo.sh)"
  [[ $TG == *-bolt ]] && BUILD="release, profile-guided, BOLT layout (bench/pgo.sh)"
else
  log "building tollgate (release)"
  (cd "$ROOT" && cargo build --release --bin tollgate)
  TG=${CARGO_TARGET_DIR:-$ROOT/target}/release/tollgate
fi

# ---------------------------------------------------------------------------------------
# Process bookkeeping: every server we start is recorded and stopped on exit, by pid.
# ---------------------------------------------------------------------------------------
WORK=$(mktemp -d /tmp/tollgate-bench.XXXXXX)
PIDS=()
OK=0
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  # The idle vCPUs' boot setting (see "Idle vCPUs" below), when the run changed it.
  [[ -n ${HALT_POLL_WAS:-} ]] && { echo "$HALT_POLL_WAS" 2>/dev/null >"$HALT_POLL" || true; }
  if ((OK)); then rm -rf "$WORK"; else echo "bench: logs and configs kept in $WORK" >&2; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------------------
# Idle vCPUs. This machine is a KVM guest booted with haltpoll.guest_halt_poll_ns=0: an
# idle vCPU halts at once, and waking it again (a process on the other CPU writes to a
# socket it waits on) costs tens of µs in the hypervisor, the same for every contender.
# At 1 connection that wait, not the proxy, was most of every request's time (see
# BENCHMARKS.md, "Idle vCPUs poll before they halt"). For the run the script lets an idle
# vCPU poll for up to HALT_POLL_NS before it halts, as the kernel does by default, and puts
# the boot setting back on exit. Polling happens in the idle loop: it never counts as a
# process's CPU time.
# ---------------------------------------------------------------------------------------
HALT_POLL=/sys/module/haltpoll/parameters/guest_halt_poll_ns
HALT_POLL_NS=${BENCH_HALT_POLL_NS:-200000}
HALT_POLL_WAS=""
HALT_POLL_USED="not available (no writable $HALT_POLL)"
[[ $HALT_POLL_NS == keep || $HALT_POLL_NS =~ ^[0-9]+$ ]] ||
  die "BENCH_HALT_POLL_NS: a number of ns or \"keep\", not '$HALT_POLL_NS'"
if [[ $HALT_POLL_NS == keep ]]; then
  [[ -r $HALT_POLL ]] && HALT_POLL_USED="$(<"$HALT_POLL") ns (the machine's setting, kept)"
elif [[ -w $HALT_POLL ]] && was=$(<"$HALT_POLL") && echo "$HALT_POLL_NS" 2>/dev/null >"$HALT_POLL"; then
  HALT_POLL_WAS=$was
  HALT_POLL_USED="$HALT_POLL_NS ns (the machine's setting: $was ns; restored on exit)"
fi

rm -rf "$OUT/logs"
mkdir -p "$OUT/logs"
rm -f "$OUT"/{runs.jsonl,meta.json,sessions.json,login.json,latest.json}
RUNS=$OUT/runs.jsonl

mapfile -t PORTS < <(python3 "$LIB" ports 10)
read -r P_UP P_AUTH P_B P_C P_GW P_GW_ADMIN P_MEM P_MEM_ADMIN P_LOGIN P_LOGIN_ADMIN <<<"${PORTS[*]}"

# waits (bounded) until URL answers anything over HTTP, while PID is alive
wait_http() {
  local url=$1 pid=$2
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || die "process $pid for $url died; see $WORK"
    [[ $(curl -s -o /dev/null -w '%{http_code}' "$url" || true) != 000 ]] && return 0
    sleep 0.1
  done
  die "$url did not come up in 10 s"
}

# nginx_conf NAME 'http-level config' -> $WORK/NAME.conf
# keepalive_requests is raised because nginx's default (1000) would make wrk and the
# proxies reconnect every 1000 requests, a cost hyper (tollgate) does not impose.
nginx_conf() {
  local name=$1 body=$2 tmp=$WORK/tmp/$1
  mkdir -p "$tmp"
  cat >"$WORK/$name.conf" <<EOF
worker_processes 1;
pid $WORK/$name.pid;
error_log $WORK/$name.error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_timeout 75s;
    keepalive_requests 1000000;
    client_body_temp_path $tmp/body;
    proxy_temp_path $tmp/proxy;
    fastcgi_temp_path $tmp/fastcgi;
    uwsgi_temp_path $tmp/uwsgi;
    scgi_temp_path $tmp/scgi;
$body
}
EOF
}

# start_nginx NAME CPU URL_TO_WAIT_FOR; sets NGINX_PIDS (master + worker)
start_nginx() {
  local name=$1 cpu=$2 url=$3 pid
  taskset -c "$cpu" "$NGINX" -p "$WORK" -e "$WORK/$name.error.log" -c "$WORK/$name.conf" \
    -g 'daemon off;' >"$WORK/$name.out" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  wait_http "$url" "$pid"
  NGINX_PIDS="$pid $(pgrep -P "$pid" | tr '\n' ' ')"
}

# tollgate_conf DIR PORT ADMIN_PORT EXTRA: see bench/lib/tollgate_conf.sh
# shellcheck source=lib/tollgate_conf.sh
source "$BENCH/lib/tollgate_conf.sh"

# start_tollgate DIR CPUS; sets TG_PID. Ready once it prints its "listening" line.
start_tollgate() {
  local dir=$1 cpus=$2
  (cd "$dir" && exec taskset -c "$cpus" "$TG" serve --config "$dir/tollgate.toml" \
    >"$dir/stdout.log" 2>"$dir/stderr.log") &
  TG_PID=$!
  PIDS+=("$TG_PID")
  for _ in $(seq 300); do
    grep -q "tollgate listening on" "$dir/stdout.log" 2>/dev/null && return 0
    kill -0 "$TG_PID" 2>/dev/null || { cat "$dir/stderr.log" >&2; die "tollgate in $dir died"; }
    sleep 0.1
  done
  die "tollgate in $dir not ready in 30 s"
}

# run_wrk LOGFILE CPU wrk-args...: wrk must exit 0 and print its BENCH_JSON line
# Also writes wrk's own CPU seconds (user + system) to LOGFILE.time.
run_wrk() {
  local logf=$1 cpu=$2 rc=0 TIMEFORMAT='%3U %3S'
  shift 2
  { time taskset -c "$cpu" wrk "$@" >"$logf" 2>&1 || rc=$?; } 2>"$logf.time"
  if ((rc != 0)); then
    cat "$logf" >&2
    die "wrk failed (exit $rc): wrk $*"
  fi
  grep -q '^BENCH_JSON ' "$logf" || { cat "$logf" >&2; die "wrk printed no result: wrk $*"; }
}

# Which parts run: the smoke run only the matrix (with its supplement).
PARTS=${BENCH_PARTS:-matrix,login,sessions}
((SMOKE)) && PARTS=matrix
part() { [[ ,$PARTS, == *,$1,* ]]; }

WRK_STRICT=0
((SMOKE)) && WRK_STRICT=1
export WRK_STRICT

# ---------------------------------------------------------------------------------------
# Machine and versions, for BENCHMARKS.md and the JSON.
# ---------------------------------------------------------------------------------------
python3 "$LIB" meta "$OUT/meta.json" \
  "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  "smoke=$SMOKE" "reps=$REPS" "duration_s=$DURATION" "warmup_s=$WARMUP" \
  "conns=${CONNS[*]}" "n_users=$N_USERS" \
  "nproc=$(nproc)" \
  "cpu_model=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')" \
  "kernel=$(uname -r)" \
  "nginx=$("$NGINX" -v 2>&1 | sed 's/.*: //')" \
  "wrk=$(wrk -v 2>&1 | head -1 | awk '{print $2}')" \
  "rustc=$(rustc --version)" \
  "git=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)$(cd "$ROOT" && git diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || echo '+dirty')" \
  "tollgate_build=$BUILD" \
  "pinning=proxy under test on CPU $SERVER_CPU, upstream nginx and auth nginx on CPU $BACKEND_CPU, wrk on CPU $LOAD_CPU" \
  "halt_poll=$HALT_POLL_USED" \
  "loadavg_at_start=$(cut -d' ' -f1-3 /proc/loadavg)"

# ---------------------------------------------------------------------------------------
# 3. Servers, all on SERVER_CPU (1): the upstream, the auth_request endpoint, and every
#    proxy under test, one worker each (tollgate runs one serving thread per CPU in its
#    set: 1). wrk has LOAD_CPU (0) to itself, so the client is never what limits a run, and
#    each contender's whole server side (for c, its auth server too) shares one CPU.
# ---------------------------------------------------------------------------------------
log "starting servers in $WORK (upstream :$P_UP, auth :$P_AUTH, nginx :$P_B / :$P_C, tollgate :$P_GW)"

nginx_conf upstream "
    server {
        listen 127.0.0.1:$P_UP;
        location / { default_type text/plain; return 200 \"ok\\n\"; }
    }"
start_nginx upstream "$BACKEND_CPU" "http://127.0.0.1:$P_UP/"
UP_PIDS=$NGINX_PIDS

nginx_conf auth "
    server {
        listen 127.0.0.1:$P_AUTH;
        location = /auth { return 204; }
    }"
start_nginx auth "$BACKEND_CPU" "http://127.0.0.1:$P_AUTH/auth"
AUTH_PIDS=$NGINX_PIDS

# b: plain reverse proxy with a keep-alive pool to the upstream.
nginx_conf proxy "
    upstream app { server 127.0.0.1:$P_UP; keepalive 64; keepalive_requests 1000000; }
    server {
        listen 127.0.0.1:$P_B;
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
        }
    }"
start_nginx proxy "$SERVER_CPU" "http://127.0.0.1:$P_B/"
B_PIDS=$NGINX_PIDS

# c: the same plus auth_request: a keep-alive subrequest to /auth (204) before every request.
nginx_conf authreq "
    upstream app { server 127.0.0.1:$P_UP; keepalive 64; keepalive_requests 1000000; }
    upstream authsrv { server 127.0.0.1:$P_AUTH; keepalive 64; keepalive_requests 1000000; }
    server {
        listen 127.0.0.1:$P_C;
        location / {
            auth_request /_auth;
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
        }
        location = /_auth {
            internal;
            proxy_pass http://authsrv/auth;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_pass_request_body off;
            proxy_set_header Content-Length \"\";
        }
    }"
start_nginx authreq "$SERVER_CPU" "http://127.0.0.1:$P_C/"
C_PIDS=$NGINX_PIDS

# d, e: tollgate. Cheap argon2 here: registering and logging in the N users is set-up,
# not what d or e measure.
GW=$WORK/gw
tollgate_conf "$GW" "$P_GW" "$P_GW_ADMIN" '[login]
[login.argon2]
memory_kib = 1024
iterations = 1'
start_tollgate "$GW" "$SERVER_CPU"
GW_PID=$TG_PID

log "registering and logging in $N_USERS users (one session each)"
TOKENS=$WORK/tokens.txt
python3 "$BENCH/lib/users.py" "http://127.0.0.1:$P_GW" "$N_USERS" "$TOKENS"
TOKEN1=$(head -1 "$TOKENS")

# ---------------------------------------------------------------------------------------
# One-off correctness checks with curl before any load.
# ---------------------------------------------------------------------------------------
declare -A URL=(
  [a]="http://127.0.0.1:$P_UP/"
  [b]="http://127.0.0.1:$P_B/"
  [c]="http://127.0.0.1:$P_C/"
  [d]="http://127.0.0.1:$P_GW/public"
  [e]="http://127.0.0.1:$P_GW/"
)
declare -A PROXY_PIDS=([a]=$UP_PIDS [b]=$B_PIDS [c]=$C_PIDS [d]=$GW_PID [e]=$GW_PID)
read -r -a CONTENDERS <<<"${BENCH_CONTENDERS:-a b c d e}"
ALL_PIDS="$UP_PIDS $AUTH_PIDS $B_PIDS $C_PIDS $GW_PID"

log "checking every contender once"
for c in a b c d e; do
  code=$(curl -sS -D "$WORK/check-$c.headers" -o "$WORK/check-$c.body" -w '%{http_code}' \
    -H "Authorization: Bearer $TOKEN1" "${URL[$c]}")
  [[ $code == 200 && $(cat "$WORK/check-$c.body") == ok ]] ||
    die "contender $c: status $code, body '$(head -c 200 "$WORK/check-$c.body")'"
done
grep -qi '^GN-Access-Token: ey' "$WORK/check-e.headers" ||
  die "contender e: no GN-Access-Token in the response"
code=$(curl -s -o /dev/null -w '%{http_code}' "${URL[e]}")
[[ $code == 401 ]] || die "contender e without a token: expected 401, got $code"
echo "  a-e answer 200 \"ok\" from the upstream; e carries GN-Access-Token; e without a token: 401"

# ---------------------------------------------------------------------------------------
# 4. The matrix. Every contender gets the identical request stream (bearer.lua cycling
#    through the N tokens; a-d ignore the header), so the client's cost is the same for all.
# ---------------------------------------------------------------------------------------
# measure PHASE CONTENDER CONNS REP DURATION: one wrk run on CPU 0, plus CPU time
# (utime+stime) and RSS of the proxy under test. The snapshots also hold the CPU time of
# all our servers and the machine's busy and steal time, so that CPU used by anything else
# during the run (the machine is shared) is recorded next to the figures.
# For e it also counts the access tokens tollgate signed during the run (each session's
# token is re-signed once per reissue_interval, an RSA private-key operation).
measure() {
  local phase=$1 c=$2 n=$3 rep=$4 secs=$5 logf before after aux="" signed=()
  logf=$OUT/logs/$phase-$c-c$n-r$rep.log
  [[ $c == c ]] && aux=$AUTH_PIDS
  [[ $c == e ]] && signed=("signed_before=$(signed_count)")
  before=$(python3 "$LIB" snap "${PROXY_PIDS[$c]}" "$aux" "$ALL_PIDS")
  run_wrk "$logf" "$LOAD_CPU" -t1 -c"$n" -d"${secs}s" --latency \
    -s "$BENCH_LUA/bearer.lua" "${URL[$c]}" -- "$TOKENS"
  after=$(python3 "$LIB" snap "${PROXY_PIDS[$c]}" "$aux" "$ALL_PIDS")
  [[ $c == e ]] && signed+=("signed_after=$(signed_count)")
  python3 "$LIB" record "$RUNS" "phase=$phase" "contender=$c" "conns=$n" "rep=$rep" \
    "wrk_log=$logf" "snap_before=$before" "snap_after=$after" "clk_tck=$CLK_TCK" \
    "ncpu=$(nproc)" "${signed[@]}"
}

# Access tokens the d/e tollgate has signed so far.
signed_count() {
  python3 "$LIB" metric "http://127.0.0.1:$P_GW_ADMIN/metrics" tollgate_tokens_signed_total ""
}

# The machine is shared (other people build and test on it). Before the load starts, wait
# (bounded) until it is nearly idle, so their work does not end up in our figures; the
# "other CPU %" recorded with every run shows whatever still overlapped.
wait_quiet() {
  local limit=$1 waited=0 busy
  while :; do
    busy=$(python3 "$LIB" busy 3)
    ((busy <= 15)) && { echo "  machine busy ${busy}% over 3 s: quiet enough"; return 0; }
    if ((waited >= limit)); then
      echo "  WARNING: machine still ${busy}% busy after ${waited} s; measuring anyway" >&2
      return 0
    fi
    echo "  machine ${busy}% busy (others' work); waiting (${waited}/${limit} s)"
    sleep 12
    waited=$((waited + 15))
  done
}
if part matrix; then
  if ((!SMOKE)); then
    log "waiting for a quiet machine (at most ${QUIET_WAIT_S} s)"
    wait_quiet "$QUIET_WAIT_S"
  fi

  log "measuring: ${CONNS[*]} connections, ${WARMUP} s warm-up, $REPS x ${DURATION} s each," \
    "wrk -t1 on CPU $LOAD_CPU, proxy under test on CPU $SERVER_CPU, upstream and auth server on CPU $BACKEND_CPU"
  # Repetitions are interleaved (a b c d e, a b c d e, ...) so a slow spell of the shared host
  # lands on every contender alike rather than on all three runs of one. Each run gets its
  # own warm-up: WARMUP seconds before a contender's first run at a connection count, 1 s
  # before the others (wrk opens fresh connections every run).
  for n in "${CONNS[@]}"; do
    for rep in $(seq "$REPS"); do
      for c in "${CONTENDERS[@]}"; do
        w=1
        ((rep == 1)) && w=$WARMUP
        run_wrk "$OUT/logs/matrix-$c-c$n-r$rep-warmup.log" "$LOAD_CPU" -t1 -c"$n" -d"${w}s" \
          -s "$BENCH_LUA/bearer.lua" "${URL[$c]}" -- "$TOKENS"
        measure matrix "$c" "$n" "$rep" "$DURATION"
      done
    done
  done

  # ---------------------------------------------------------------------------------------
  # Supplement: 1 connection with every process on CPU 0. On this machine (a KVM guest whose
  # idle vCPUs halt) each hand-over between CPU 0 and CPU 1 pays for waking the other vCPU,
  # and at 1 connection every request makes two of them (wrk -> server side -> wrk); on some
  # hosts that cost dominates the pinned 1-connection latency. With everything on one CPU a
  # request is a chain of context switches on one core, which shows what the proxy itself
  # adds. The servers are moved (all threads) onto CPU 0; the login part below keeps the
  # upstream there.
  # ---------------------------------------------------------------------------------------
  ((SAMECORE_DURATION > 0)) || CONTENDERS=() # BENCH_SAMECORE_DURATION=0: no supplement
  log "supplement: 1 connection, every process on CPU $LOAD_CPU, $REPS x ${SAMECORE_DURATION} s"
  # shellcheck disable=SC2086
  for pid in $ALL_PIDS; do taskset -a -p -c "$LOAD_CPU" "$pid" >/dev/null; done
  for rep in $(seq "$REPS"); do
    for c in "${CONTENDERS[@]}"; do
      run_wrk "$OUT/logs/samecore-$c-r$rep-warmup.log" "$LOAD_CPU" -t1 -c1 -d1s \
        -s "$BENCH_LUA/bearer.lua" "${URL[$c]}" -- "$TOKENS"
      measure samecore "$c" 1 "$rep" "$SAMECORE_DURATION"
    done
  done
fi # part matrix

kill -TERM "$GW_PID" # the matrix gateway is done; keep the machine quiet

if part login; then
  # -------------------------------------------------------------------------------------
  # 6. Logins at the default argon2 cost, and proxied p99 while logins keep every hashing
  #    slot busy. This tollgate runs on both CPUs (so max_concurrent_hashes defaults to 2);
  #    the wrk clients and the upstream run on CPU 0.
  # -------------------------------------------------------------------------------------
  log "login figures: tollgate on CPUs $BOTH_CPUS with default argon2 (m=19456, t=2, p=1)"
  wait_quiet 120
  # shellcheck disable=SC2086
  for pid in $UP_PIDS; do taskset -a -p -c "$LOAD_CPU" "$pid" >/dev/null; done
  LG=$WORK/login
  tollgate_conf "$LG" "$P_LOGIN" "$P_LOGIN_ADMIN" ''
  start_tollgate "$LG" "$BOTH_CPUS"
  LOGIN_URL=http://127.0.0.1:$P_LOGIN
  LTOKENS=$WORK/login-tokens.txt
  python3 "$BENCH/lib/users.py" "$LOGIN_URL" "$N_USERS" "$LTOKENS" l
  LUSER=l0000001 LPASS=bench-password-0000001
  HASH_SLOTS=$(taskset -c "$BOTH_CPUS" nproc)

  # 4 connections > 2 slots: a login is always waiting, so both slots stay busy.
  echo "  logins/s: wrk -c4 for $LOGIN_SECONDS s"
  run_wrk "$OUT/logs/login.log" "$LOAD_CPU" -t1 -c4 -d"${LOGIN_SECONDS}s" --timeout 10s --latency \
    -s "$BENCH_LUA/login.lua" "$LOGIN_URL/auth/login" -- "$LUSER" "$LPASS"
  python3 "$LIB" record "$RUNS" phase=login contender=login conns=4 rep=1 \
    "wrk_log=$OUT/logs/login.log"

  echo "  authenticated route, 16 connections, without and with a login flood"
  run_wrk "$OUT/logs/quiet-warmup.log" "$LOAD_CPU" -t1 -c16 -d"${WARMUP}s" \
    -s "$BENCH_LUA/bearer.lua" "$LOGIN_URL/" -- "$LTOKENS"
  # flood_pairs SUFFIX URL TOKENS: quiet and flooded runs of the authenticated route at 16
  # connections, alternating as the matrix's contenders do, so that a slow spell of the host
  # falls on either alike. Each lasts LOGIN_RUN_S, a whole re-issue interval, so each
  # re-signs every session's token once: in shorter runs the minute's re-signing lands in
  # some runs and not others, and would decide their p99s by chance.
  flood_pairs() {
    local sfx=$1 url=$2 tokens=$3 rep flood
    for rep in $(seq "$REPS"); do
      run_wrk "$OUT/logs/quiet$sfx-r$rep.log" "$LOAD_CPU" -t1 -c16 -d"${LOGIN_RUN_S}s" --latency \
        -s "$BENCH_LUA/bearer.lua" "$url/" -- "$tokens"
      python3 "$LIB" record "$RUNS" "phase=quiet$sfx" "contender=e-quiet$sfx" conns=16 "rep=$rep" \
        "wrk_log=$OUT/logs/quiet$sfx-r$rep.log"
      # The flood starts 2 s before and ends 2 s after the measured run.
      run_wrk "$OUT/logs/flooder$sfx-r$rep.log" "$LOAD_CPU" -t1 -c4 -d"$((LOGIN_RUN_S + 4))s" --timeout 10s \
        -s "$BENCH_LUA/login.lua" "$url/auth/login" -- "$LUSER" "$LPASS" &
      flood=$!
      sleep 2
      run_wrk "$OUT/logs/flood$sfx-r$rep.log" "$LOAD_CPU" -t1 -c16 -d"${LOGIN_RUN_S}s" --latency \
        -s "$BENCH_LUA/bearer.lua" "$url/" -- "$tokens"
      wait "$flood" || die "login flood wrk failed"
      python3 "$LIB" record "$RUNS" "phase=flood$sfx" "contender=e-flood$sfx" conns=16 "rep=$rep" \
        "wrk_log=$OUT/logs/flood$sfx-r$rep.log"
      python3 "$LIB" record "$RUNS" "phase=flooder$sfx" "contender=flooder$sfx" conns=4 "rep=$rep" \
        "wrk_log=$OUT/logs/flooder$sfx-r$rep.log"
    done
  }
  flood_pairs "" "$LOGIN_URL" "$LTOKENS"
  kill -TERM "$TG_PID"
  wait "$TG_PID" 2>/dev/null || true

  # The same with the hashing threads kept to SERVER_CPU (`login.hash_cpus`): the serving
  # threads still use both CPUs, but no hash runs beside wrk and the upstream on LOAD_CPU.
  # Same number of hashing slots, so the flood still keeps every slot busy.
  # BENCH_LOGIN_KEPT=0 skips it.
  if [[ ${BENCH_LOGIN_KEPT:-1} == 1 ]] && ((LOAD_CPU != SERVER_CPU)); then
    echo "  the same with the hashing threads kept to CPU $SERVER_CPU (login.hash_cpus)"
    LK=$WORK/login-kept
    tollgate_conf "$LK" "$P_LOGIN" "$P_LOGIN_ADMIN" "[login]
hash_cpus = [$SERVER_CPU]"
    start_tollgate "$LK" "$BOTH_CPUS"
    python3 "$BENCH/lib/users.py" "$LOGIN_URL" "$N_USERS" "$WORK/login-kept-tokens.txt" l
    run_wrk "$OUT/logs/quiet-kept-warmup.log" "$LOAD_CPU" -t1 -c16 -d"${WARMUP}s" \
      -s "$BENCH_LUA/bearer.lua" "$LOGIN_URL/" -- "$WORK/login-kept-tokens.txt"
    flood_pairs -kept "$LOGIN_URL" "$WORK/login-kept-tokens.txt"
    kill -TERM "$TG_PID"
  fi
  python3 "$LIB" loginsum "$OUT" "$HASH_SLOTS" "$SERVER_CPU"
fi # part login

if part sessions; then

  # -------------------------------------------------------------------------------------
  # 5. Memory of live sessions. One user logs in over and over (each login is a new
  #    session) with cheap argon2 and 2 hashing slots; tollgate on both CPUs.
  #    1M if the first 100k show it fits in SESSIONS_BUDGET_S, else up to 200k and an
  #    extrapolation (labelled as such).
  # -------------------------------------------------------------------------------------
  log "sessions in memory"
  MEM=$WORK/mem
  tollgate_conf "$MEM" "$P_MEM" "$P_MEM_ADMIN" '[login]
max_concurrent_hashes = 2
[login.argon2]
memory_kib = 1024
iterations = 1'
  start_tollgate "$MEM" "$BOTH_CPUS"
  MEM_PID=$TG_PID
  python3 "$BENCH/lib/users.py" "http://127.0.0.1:$P_MEM" 1 "$WORK/mem-token.txt" m
  MUSER=m0000001 MPASS=bench-password-0000001
  # Live sessions from the admin /metrics: the `tollgate_sessions` gauge where this build has
  # it, else the count of successful logins (on this instance the only 200s from tollgate's
  # own endpoints), which equals the sessions created.
  SESSIONS_METRIC=(tollgate_requests_total 'route="none",status="200"')
  if curl -s "http://127.0.0.1:$P_MEM_ADMIN/metrics" | grep -q '^tollgate_sessions '; then
    SESSIONS_METRIC=(tollgate_sessions '')
  fi
  echo "  counting sessions with ${SESSIONS_METRIC[0]}"
  sessions() {
    python3 "$LIB" metric "http://127.0.0.1:$P_MEM_ADMIN/metrics" "${SESSIONS_METRIC[@]}"
  }
  sleep 1
  RSS_BEFORE=$(python3 "$LIB" rss "$MEM_PID")
  echo "  idle with 1 user and $(sessions) session: RSS $((RSS_BEFORE / 1024)) MiB"
  POINTS=$WORK/session-points.txt
  : >"$POINTS"
  # Points at 1/2, 1, 3/2 and 2 x SESSIONS_FIRST; if the rate seen at SESSIONS_FIRST says the
  # full million fits the time budget, the later points become 1/4, 1/2 and 1 x SESSIONS_FULL.
  half=$((SESSIONS_FIRST / 2))
  targets=("$half" "$SESSIONS_FIRST" $((SESSIONS_FIRST + half)) $((2 * SESSIONS_FIRST)))
  start=$SECONDS chunk=5 rate=0 ti=0 chunkno=0
  while ((ti < ${#targets[@]})); do
    target=${targets[$ti]} have=$(sessions)
    if ((have >= target)); then
      el=$((SECONDS - start))
      rss=$(python3 "$LIB" rss "$MEM_PID")
      echo "  $have sessions after $el s: RSS $((rss / 1024)) MiB"
      echo "$have $rss $el" >>"$POINTS"
      rate=$((have / (el > 0 ? el : 1)))
      # A chunk may pass several points at once: they share this one measurement.
      decide=0
      while ((ti < ${#targets[@]})) && ((targets[ti] <= have)); do
        ((targets[ti] == SESSIONS_FIRST)) && decide=1
        ti=$((ti + 1))
      done
      if ((decide)); then
        if ((SESSIONS_FULL / (rate > 0 ? rate : 1) <= SESSIONS_BUDGET_S)); then
          targets=("$half" "$SESSIONS_FIRST" $((SESSIONS_FULL / 4)) $((SESSIONS_FULL / 2)) "$SESSIONS_FULL")
          echo "  $rate logins/s: $SESSIONS_FULL sessions fit in ${SESSIONS_BUDGET_S} s; going on to them"
        else
          echo "  $rate logins/s: $SESSIONS_FULL sessions would take ~$((SESSIONS_FULL / rate)) s" \
            "(> ${SESSIONS_BUDGET_S} s); stopping at $((2 * SESSIONS_FIRST)) and extrapolating"
        fi
      fi
      continue
    fi
    ((SECONDS - start < 3 * SESSIONS_BUDGET_S)) || die "session fill exceeded its time bound"
    # Aim each chunk at the next point from the rate seen so far: at most 30 s, at least 1 s.
    if ((rate > 0)); then chunk=$(((target - have) / rate + 1)); fi
    ((chunk > 30)) && chunk=30
    chunkno=$((chunkno + 1))
    run_wrk "$OUT/logs/sessions-$chunkno.log" "$BOTH_CPUS" -t2 -c16 -d"${chunk}s" --timeout 10s \
      -s "$BENCH_LUA/login.lua" "http://127.0.0.1:$P_MEM/auth/login" -- "$MUSER" "$MPASS"
    python3 "$LIB" record "$RUNS" phase=sessions contender=sessions conns=16 "rep=$chunkno" \
      "wrk_log=$OUT/logs/sessions-$chunkno.log" >/dev/null
    el=$((SECONDS - start))
    rate=$(($(sessions) / (el > 0 ? el : 1)))
  done
  # The count above is of logins, not of live sessions: check that the oldest session
  # (the first login, before the fill) still lets its token through, i.e. nothing was
  # evicted and the figure really is RSS with every one of these sessions held.
  oldest=$(curl -s -o /dev/null -w '%{http_code}' \
    -H "Authorization: Bearer $(head -1 "$WORK/mem-token.txt")" "http://127.0.0.1:$P_MEM/")
  if [[ $oldest == 200 ]]; then
    echo "  the first session (created before the fill) is still live: 200"
  else
    echo "  WARNING: the first session's token now gets $oldest: sessions were evicted" >&2
  fi
  python3 "$LIB" sessionsum "$OUT" "$RSS_BEFORE" "$POINTS" \
    "one user logging in repeatedly, argon2 m=1024 t=1, 2 hashing slots, tollgate on CPUs $BOTH_CPUS; counted by ${SESSIONS_METRIC[0]}" \
    "$oldest"
fi # part sessions

# ---------------------------------------------------------------------------------------
# 8. Tables, ratios, targets and target/bench/latest.json.
# ---------------------------------------------------------------------------------------
log "results"
status=0
python3 "$LIB" summarize "$OUT" || status=$?
echo
echo "JSON: $OUT/latest.json   wrk logs: $OUT/logs"
if ((status != 0)); then
  echo "bench: FAILED: some contender returned errors or non-2xx responses" >&2
  exit 1
fi
OK=1
