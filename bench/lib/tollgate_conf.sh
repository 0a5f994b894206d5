# Sourced by bench/run.sh and bench/callgrind.sh: the tollgate configuration both measure.
# Needs $TG (the tollgate binary) and $P_UP (the upstream's port). Start tollgate with DIR
# as its working directory: the database and key paths are relative to it.

# tollgate_conf DIR PORT ADMIN_PORT 'extra [login] lines' -> DIR/tollgate.toml + key
tollgate_conf() {
  local dir=$1 port=$2 admin=$3 login=$4
  mkdir -p "$dir"
  "$TG" keygen --algorithm RS256 --out "$dir/signing.pem" >/dev/null
  cat >"$dir/tollgate.toml" <<EOF
[server]
listen = "127.0.0.1:$port"
shutdown_timeout = "1s"

[admin]
listen = "127.0.0.1:$admin"

[database]
url = "sqlite://tollgate.db"

[sessions]
idle_timeout = "30m"

[tokens]
issuer = "https://tollgate.bench.invalid"
audience = "tollgate"
algorithm = "RS256"
signing_key_file = "signing.pem"

[cookies]
secure = false

$login

# warn: no access-log line per request (the default "info" writes one; see BENCHMARKS.md)
[log]
level = "warn"

[[routes]]
name = "public"
path = "/public"
upstream = "http://127.0.0.1:$P_UP"
policy = "public"

[[routes]]
name = "app"
path = "/"
upstream = "http://127.0.0.1:$P_UP"
policy = "authenticated"
EOF
}

