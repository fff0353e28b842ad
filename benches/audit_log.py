#!/usr/bin/env python3
"""The audit tools over a large log: the sealer, `events export`, `verify-log` and
`projections rebuild`.

    cargo build --release --bin threadline
    python3 benches/audit_log.py [--events 1000000] [--bin target/release/threadline]
        [--database-url postgres://…/EMPTY_DB]

Fills a fresh database — SQLite in a temp dir, or the empty PostgreSQL database given — with
`--events` events shaped like real replies (per reply: GenerationStarted, 98 ChunksAppended of
one word, GenerationCompleted), lets a server seal them (the sealer task of `serve`; the
projector folds them at the same time, as it would after a restore), then runs
`events export > /dev/null`, `verify-log` and `projections rebuild` under `/usr/bin/time -v`.
Prints events/s and peak RSS of each. Loopback only; the temp dir is removed at the end (a
PostgreSQL database is left as it is; PostgreSQL needs `psql` on the PATH).
"""

import argparse
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time


def fill(db_path, total):
    con = sqlite3.connect(db_path)
    per_reply = 100
    rows = []
    started = time.time()
    # Python's SQLite may predate `unixepoch('subsec')`, the column's default: times are given.
    base = int(started * 1_000_000)
    for g in range(total // per_reply):
        gid = f"01900000-0000-7000-8000-{g:012d}"
        meta = json.dumps({"correlation_id": f"req-{g}", "causation_id": f"req-{g}", "actor": f"acc-{g % 1000}"})
        rows.append(("Generation", gid, 1, "GenerationStarted", "1", json.dumps({"GenerationStarted": {
            "thread_id": f"t{g}", "message_id": f"m{g}", "parent_id": f"u{g}", "model": "echo",
            "provider": "echo", "context": [{"role": "user", "content": "hello there"}], "node_id": "bench",
            "at": "2026-12-03T00:00:00Z"}}), meta, base + g * per_reply))
        for i in range(per_reply - 2):
            rows.append(("Generation", gid, i + 2, "ChunksAppended", "1", json.dumps({"ChunksAppended": {
                "first_index": i, "chunks": [{"type": "text", "text": f"word{i} "}]}}), meta,
                         base + g * per_reply + i + 1))
        rows.append(("Generation", gid, per_reply, "GenerationCompleted", "1", json.dumps({"GenerationCompleted": {
            "finish_reason": "stop", "usage": {"input_tokens": 2, "output_tokens": 98, "reasoning_tokens": 0,
                                               "cached_input_tokens": 0}, "provider_ms": 500, "cost_micros": 0,
            "at": "2026-12-03T00:00:01Z"}}), meta, base + g * per_reply + per_reply - 1))
        if len(rows) >= 100_000:
            con.executemany("INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, "
                            "event_version, payload, metadata, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
            con.commit()
            rows = []
    if rows:
        con.executemany("INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, "
                        "event_version, payload, metadata, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        con.commit()
    n = con.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    con.close()
    print(f"filled {n} events in {time.time() - started:.1f}s", file=sys.stderr)
    return n


# The same replies as `fill`, in one statement (PostgreSQL takes the times from the clock).
POSTGRES_FILL = """
INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload,
                    metadata)
SELECT 'Generation', '01900000-0000-7000-8000-' || lpad(g::text, 12, '0'), s,
       CASE s WHEN 1 THEN 'GenerationStarted' WHEN 100 THEN 'GenerationCompleted'
              ELSE 'ChunksAppended' END,
       '1',
       CASE s
         WHEN 1 THEN json_build_object('GenerationStarted', json_build_object(
           'thread_id', 't' || g, 'message_id', 'm' || g, 'parent_id', 'u' || g,
           'model', 'echo', 'provider', 'echo',
           'context', json_build_array(json_build_object('role', 'user', 'content', 'hello there')),
           'node_id', 'bench', 'at', '2026-12-03T00:00:00Z'))
         WHEN 100 THEN json_build_object('GenerationCompleted', json_build_object(
           'finish_reason', 'stop',
           'usage', json_build_object('input_tokens', 2, 'output_tokens', 98,
                                      'reasoning_tokens', 0, 'cached_input_tokens', 0),
           'provider_ms', 500, 'cost_micros', 0, 'at', '2026-12-03T00:00:01Z'))
         ELSE json_build_object('ChunksAppended', json_build_object(
           'first_index', s - 2,
           'chunks', json_build_array(json_build_object('type', 'text', 'text', 'word' || (s - 2) || ' '))))
       END,
       json_build_object('correlation_id', 'req-' || g, 'causation_id', 'req-' || g,
                         'actor', 'acc-' || (g % 1000))
FROM generate_series(0, {replies} - 1) AS g, generate_series(1, 100) AS s
ORDER BY g, s
"""


def psql(url, sql):
    out = subprocess.run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", url, "-c", sql],
                         check=True, stdout=subprocess.PIPE, text=True)
    return out.stdout.strip()


def fill_postgres(url, total):
    started = time.time()
    psql(url, POSTGRES_FILL.format(replies=total // 100))
    n = int(psql(url, "SELECT COUNT(*) FROM events"))
    print(f"filled {n} events in {time.time() - started:.1f}s", file=sys.stderr)
    return n


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sealed(db_path, url):
    if url:
        return int(psql(url, "SELECT COUNT(*) FROM log_seals"))
    con = sqlite3.connect(db_path)
    try:
        return con.execute("SELECT COUNT(*) FROM log_seals").fetchone()[0]
    finally:
        con.close()


def timed(cmd, env, label, events, keep_stdout=False):
    started = time.time()
    out = subprocess.run(["/usr/bin/time", "-v", *cmd], env=env,
                         stdout=subprocess.PIPE if keep_stdout else subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    elapsed = time.time() - started
    rss = next((int(line.split(":")[1]) for line in out.stderr.splitlines()
                if "Maximum resident set size" in line), 0)
    lines = out.stderr.splitlines() + (out.stdout or "").splitlines()
    tail = [line[:60] for line in lines if line.startswith(("ok:", "exported", "error"))]
    print(f"{label}: {events} events in {elapsed:.2f}s = {events / elapsed:,.0f} events/s, "
          f"peak RSS {rss / 1024:.0f} MiB, exit {out.returncode} {tail}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--bin", default="target/release/threadline")
    parser.add_argument("--database-url", help="an empty PostgreSQL database instead of SQLite")
    args = parser.parse_args()
    url = args.database_url
    data = tempfile.mkdtemp(prefix="threadline-audit-")
    try:
        env = dict(os.environ, THREADLINE_DATA_DIR=data, RUST_LOG="warn")
        env.pop("DATABASE_URL", None)
        if url:
            env["DATABASE_URL"] = url
        subprocess.run([args.bin, "migrate"], env=env, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        db_path = os.path.join(data, "threadline.db")
        n = fill_postgres(url, args.events) if url else fill(db_path, args.events)
        port = free_port()
        started = time.time()
        server = subprocess.Popen([args.bin, "serve", "--bind", f"127.0.0.1:{port}"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while sealed(db_path, url) < n:
                if server.poll() is not None:
                    raise SystemExit(f"the server exited with {server.returncode}")
                if time.time() - started > 1800:
                    raise SystemExit("the sealer did not finish in 30 minutes")
                time.sleep(0.5)
            elapsed = time.time() - started
            print(f"sealer (while the projector folds the same events): {n} events in "
                  f"{elapsed:.1f}s = {n / elapsed:,.0f} events/s")
        finally:
            server.terminate()
            server.wait(timeout=60)
        timed([args.bin, "events", "export"], env, "events export", n)
        timed([args.bin, "verify-log"], env, "verify-log", n, keep_stdout=True)
        timed([args.bin, "projections", "rebuild"], env, "projections rebuild (every projection)", n)
    finally:
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
