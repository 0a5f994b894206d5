# Sourced by bench/callgrind.sh and bench/pgo.sh: their nginx upstream, and the bookkeeping
# that stops every server they start. Needs $NGINX and $BENCH; `upstream_setup` makes $WORK
# (a temp dir, removed on exit).

PIDS=()
stop_all() {
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [[ -z ${WORK:-} ]] || rm -rf "$WORK"
}
trap stop_all EXIT

# upstream_start PORT: nginx answering every request with 200 "ok\n", keep-alive, no access
# log, with $WORK as its prefix; its pid joins PIDS.
upstream_start() {
  local port=$1
  mkdir -p "$WORK/tmp"
  cat >"$WORK/upstream.conf" <<EOF
worker_processes 1;
pid $WORK/upstream.pid;
error_log $WORK/upstream.err warn;
events { worker_connections 1024; }
http {
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path $WORK/tmp/body; proxy_temp_path $WORK/tmp/proxy;
    fastcgi_temp_path $WORK/tmp/fastcgi; uwsgi_temp_path $WORK/tmp/uwsgi; scgi_temp_path $WORK/tmp/scgi;
    server { listen 127.0.0.1:$port; location / { default_type text/plain; return 200 "ok\\n"; } }
}
EOF
  "$NGINX" -p "$WORK" -c "$WORK/upstream.conf" -g 'daemon off;' 2>/dev/null &
  PIDS+=($!)
}

# upstream_setup NAME: a temp dir for this run ($WORK, /tmp/tollgate-NAME.*), three free
# ports (P_UP, P_GW, P_ADMIN), and the upstream listening on P_UP.
upstream_setup() {
  WORK=$(mktemp -d "/tmp/tollgate-$1.XXXXXX")
  mapfile -t PORTS < <(python3 "$BENCH/lib/benchlib.py" ports 3)
  read -r P_UP P_GW P_ADMIN <<<"${PORTS[*]}"
  upstream_start "$P_UP"
}
