#!/usr/bin/env bash
# Runs tollgate on http://127.0.0.1:8080 in front of the demo upstream (127.0.0.1:3000),
# using config/quickstart.toml. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --bin tollgate --example demo_upstream

./target/release/examples/demo_upstream 127.0.0.1:3000 &
demo=$!
trap 'kill "$demo" 2>/dev/null || true' EXIT

echo "try: curl -i http://127.0.0.1:8080/hello?name=you"
echo "     curl http://127.0.0.1:9900/metrics"
./target/release/tollgate serve --config config/quickstart.toml
