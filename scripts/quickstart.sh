#!/usr/bin/env bash
# Runs tollgate on http://127.0.0.1:8080 in front of the demo upstream (127.0.0.1:3000),
# using config/quickstart.toml: creates a signing key and a demo user on first run, prints
# the demo user's credentials and the curl lines to try. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --bin tollgate --example demo_upstream
tollgate=./target/release/tollgate
config=config/quickstart.toml

mkdir -p var
[ -f var/signing.pem ] || "$tollgate" keygen --algorithm RS256 --out var/signing.pem
"$tollgate" migrate --config "$config"
if [ ! -f var/demo-password ]; then
    (umask 077; head -c 18 /dev/urandom | base64 | tr -d '/+=' > var/demo-password)
    "$tollgate" user add --config "$config" --username demo --email demo@example.com \
        --role admin --password-stdin < var/demo-password
fi
password=$(cat var/demo-password)

./target/release/examples/demo_upstream 127.0.0.1:3000 &
demo=$!
trap 'kill "$demo" 2>/dev/null || true' EXIT

cat <<EOT

Demo user: demo@example.com  password: $password
Sign in in a browser at http://127.0.0.1:8080/ or with curl:

  TOKEN=\$(curl -s http://127.0.0.1:8080/auth/login -H 'content-type: application/json' \\
      -d '{"email":"demo@example.com","password":"$password"}' | sed 's/.*"access_token":"\([^"]*\)".*/\1/')
  curl -i http://127.0.0.1:8080/hello -H "Authorization: Bearer \$TOKEN"
      # the demo app shows the x-user-id it received; GN-Access-Token comes back
  curl -i http://127.0.0.1:8080/hello                  # 401 missingToken
  curl -i http://127.0.0.1:8080/public/anything        # a public route
  curl http://127.0.0.1:8080/auth/me -H "Authorization: Bearer \$TOKEN"

EOT
"$tollgate" serve --config "$config"
