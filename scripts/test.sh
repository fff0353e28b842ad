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

echo "== tests on SQLite"
TEST_DATABASE_URL= run_tests "$@"

echo "== tests on PostgreSQL"
eval "$(scripts/postgres.sh start)"
trap 'scripts/postgres.sh stop "$THREADLINE_PG_DIR"' EXIT
run_tests "$@"
