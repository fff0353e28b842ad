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

need_node() {
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "installing Node.js..."
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm
  fi
}

# Builds the server and prints the binary's absolute path.
server_bin() {
  cargo build --bin threadline >&2
  echo "$(cd "${CARGO_TARGET_DIR:-target}" && pwd)/debug/threadline"
}

# The AI SDK compatibility test (Node): the SDK's own client against the built server.
compat() {
  need_node
  local bin
  bin="$(server_bin)"
  (cd clients/ai-sdk && npm ci --no-audit --no-fund --loglevel=error \
    && THREADLINE_BIN="$bin" node --test compat.test.mjs)
}

# A virtual environment of its own under the cache dir (system Pythons refuse global pip
# installs), with `$2…` installed once; prints its directory.
python_venv() {
  local venv="${XDG_CACHE_HOME:-$HOME/.cache}/$1"
  shift
  if [ ! -f "$venv/.installed" ] || [ "$(cat "$venv/.installed")" != "$*" ]; then
    echo "installing $*..." >&2
    if ! python3 -m venv "$venv" >/dev/null 2>&1; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >&2
      python3 -m venv "$venv"
    fi
    "$venv/bin/pip" install --quiet "$@" >&2
    echo "$*" >"$venv/.installed"
  fi
  echo "$venv"
}

# OpenAI's own SDKs (Node and Python, pinned) against the built server's Chat Completions.
# COMPAT_DATABASE_URL, when set, is a database prefix: each client gets `_node` / `_py` of it.
openai_compat() {
  need_node
  local bin venv
  bin="$(server_bin)"
  venv="$(python_venv threadline-openai "$(cat clients/openai/requirements.txt)")"
  (cd clients/openai && npm ci --no-audit --no-fund --loglevel=error \
    && COMPAT_DATABASE_URL="${COMPAT_DATABASE_URL:+${COMPAT_DATABASE_URL}_node}" \
       THREADLINE_BIN="$bin" node --test compat.test.mjs \
    && COMPAT_DATABASE_URL="${COMPAT_DATABASE_URL:+${COMPAT_DATABASE_URL}_py}" \
       THREADLINE_BIN="$bin" "$venv/bin/python" -m unittest -v test_compat.py)
}

# The web app: its unit tests (Node, no packages) and its browser journeys (Playwright driving
# Debian's chromium; Playwright's own browser download cannot be reached, and is not needed).
web_unit() {
  need_node
  node --test web/tests/unit/
}

browser() {
  need_node
  local chromium="${CHROMIUM_PATH:-/usr/bin/chromium}"
  if [ ! -x "$chromium" ]; then
    echo "installing chromium..."
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
    chromium=/usr/bin/chromium
  fi
  local bin
  bin="$(server_bin)"
  (cd web && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error \
    && CHROMIUM_PATH="$chromium" THREADLINE_BIN="$bin" PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 \
       npx playwright test)
}

# A local S3-compatible server (moto, pinned, from PyPI) for the object storage tests.
start_s3() {
  local moto=moto_server
  if ! command -v moto_server >/dev/null 2>&1; then
    moto="$(python_venv threadline-moto "moto[server]==5.2.1")/bin/moto_server"
  fi
  local port log
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  log="$(mktemp)"
  "$moto" -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
  MOTO_PID=$!
  for _ in $(seq 1 100); do
    if python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/')" 2>/dev/null; then
      export TEST_S3_ENDPOINT="http://127.0.0.1:$port"
      return
    fi
    sleep 0.2
  done
  cat "$log" >&2
  echo "moto_server did not start" >&2
  exit 1
}

stop_all() {
  if [ -n "${MOTO_PID:-}" ]; then kill "$MOTO_PID" 2>/dev/null || true; fi
  if [ -n "${THREADLINE_PG_DIR:-}" ]; then scripts/postgres.sh stop "$THREADLINE_PG_DIR"; fi
}
trap stop_all EXIT
start_s3

echo "== tests on SQLite"
TEST_DATABASE_URL= run_tests "$@"
if [ $# -eq 0 ]; then
  echo "== AI SDK compatibility on SQLite"
  COMPAT_DATABASE_URL= compat
  echo "== OpenAI SDK compatibility on SQLite"
  COMPAT_DATABASE_URL= openai_compat
  echo "== web app unit tests"
  web_unit
  echo "== web app in the browser on SQLite"
  E2E_DATABASE_URL= browser
fi

echo "== tests on PostgreSQL"
eval "$(scripts/postgres.sh start)"
run_tests "$@"
if [ $# -eq 0 ]; then
  echo "== AI SDK compatibility on PostgreSQL"
  "$THREADLINE_PG_BIN/psql" "$TEST_DATABASE_URL" -qc "CREATE DATABASE compat"
  COMPAT_DATABASE_URL="${TEST_DATABASE_URL%/postgres}/compat" compat
  echo "== OpenAI SDK compatibility on PostgreSQL"
  for db in openai_node openai_py; do
    "$THREADLINE_PG_BIN/psql" "$TEST_DATABASE_URL" -qc "CREATE DATABASE $db"
  done
  COMPAT_DATABASE_URL="${TEST_DATABASE_URL%/postgres}/openai" openai_compat
  echo "== web app in the browser on PostgreSQL"
  E2E_DATABASE_URL="$TEST_DATABASE_URL" browser
fi
