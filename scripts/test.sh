#!/usr/bin/env bash
# The test command: the whole suite against SQLite, then against a throwaway PostgreSQL that
# this script starts and stops. Extra arguments go to the test runner (e.g. a test name filter).
set -euo pipefail
cd "$(dirname "$0")/.."

run_tests() {
  if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast "$@"
  else
    cargo test --workspace --no-fail-fast "$@"
  fi
}

# The AI SDK compatibility test (Node): the SDK's own client against the built server.
compat() {
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "installing Node.js..."
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm
  fi
  cargo build --bin threadline
  local bin
  bin="$(cd "${CARGO_TARGET_DIR:-target}" && pwd)/debug/threadline"
  (cd clients/ai-sdk && npm ci --no-audit --no-fund --loglevel=error \
    && THREADLINE_BIN="$bin" node --test compat.test.mjs)
}

echo "== tests on SQLite"
TEST_DATABASE_URL= run_tests "$@"
if [ $# -eq 0 ]; then
  echo "== AI SDK compatibility on SQLite"
  COMPAT_DATABASE_URL= compat
fi

echo "== tests on PostgreSQL"
eval "$(scripts/postgres.sh start)"
trap 'scripts/postgres.sh stop "$THREADLINE_PG_DIR"' EXIT
run_tests "$@"
if [ $# -eq 0 ]; then
  echo "== AI SDK compatibility on PostgreSQL"
  "$THREADLINE_PG_BIN/psql" "$TEST_DATABASE_URL" -qc "CREATE DATABASE compat"
  COMPAT_DATABASE_URL="${TEST_DATABASE_URL%/postgres}/compat" compat
fi
