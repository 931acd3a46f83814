#!/usr/bin/env bash
# tests/scripts: starts `rme serve` on the shipped rme-mini (with an API key) and runs the official
# `openai` npm client against it (tests/node/openai_client_test.mjs). Exits 77 (ctest: skipped,
# with the reason printed) when Node.js or the npm packages are missing; scripts/install-deps.sh
# installs both.
#   openai_client_test.sh SOURCE_DIR RME_BINARY
set -euo pipefail
root=$1
rme=$2
node_dir=$root/tests/node
command -v node >/dev/null || { echo "SKIP: no node (scripts/install-deps.sh installs it)"; exit 77; }
[ -f "$node_dir/node_modules/openai/package.json" ] || {
  echo "SKIP: the openai npm package is not installed (scripts/install-deps.sh runs npm ci in tests/node)"
  exit 77
}
work=$(mktemp -d)
pid=
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
"$rme" serve "$root/data/models/rme-mini" -t 1 --port 0 --api-key test-key >"$work/serve.log" 2>&1 &
pid=$!
port=
for _ in $(seq 200); do
  port=$(grep -oE 'http://127\.0\.0\.1:[0-9]+' "$work/serve.log" | head -1 | sed 's/.*://') || true
  [ -n "$port" ] && break
  kill -0 "$pid" 2>/dev/null || { echo "rme serve exited:"; cat "$work/serve.log"; exit 1; }
  sleep 0.1
done
[ -n "$port" ] || { echo "rme serve printed no URL:"; cat "$work/serve.log"; exit 1; }
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$port/health" >/dev/null && break
  sleep 0.1
done
status=0
node "$node_dir/openai_client_test.mjs" "http://127.0.0.1:$port/v1" test-key || status=$?
[ $status -eq 0 ] || { echo "--- rme serve log"; tail -40 "$work/serve.log"; }
exit $status
