#!/usr/bin/env python3
"""Memory of idle SSE connections: opens N `GET /v1/events` connections to a release
`threadline` (SQLite in a temp dir) and reports the server's resident memory.

    cargo build --release --bin threadline && python3 benches/idle_sse.py [N]

Loopback only, bounded: N connections (default 10,000), held for a few seconds, then closed.
"""
import asyncio, json, os, resource, socket, subprocess, sys, tempfile, time, urllib.request

N = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
BIN = os.environ.get("THREADLINE_BIN", os.path.join(os.path.dirname(__file__), "..", "target", "release", "threadline"))


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def hold(port, token, ready):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
    await writer.drain()
    await reader.readuntil(b"\r\n\r\n")
    ready.append(1)
    return reader, writer


async def main():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = N + 1024  # per process: the client and the server each hold N sockets
    if hard != resource.RLIM_INFINITY and hard < want:
        sys.exit(f"need {want} file descriptors, the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
    data = tempfile.mkdtemp()
    env = dict(os.environ, THREADLINE_BIND=f"127.0.0.1:{port}", THREADLINE_DATA_DIR=data,
               THREADLINE_ANON_PER_MINUTE="0", RUST_LOG="error")
    env.pop("DATABASE_URL", None)
    server = subprocess.Popen([BIN, "serve"], env=env)
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz"); break
            except Exception:
                time.sleep(0.05)
        req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/auth/anonymous", method="POST")
        token = json.load(urllib.request.urlopen(req))["token"]
        before = rss_mib(server.pid)
        ready = []
        conns = []
        for start in range(0, N, 500):
            conns += await asyncio.gather(*(hold(port, token, ready) for _ in range(start, min(N, start + 500))))
        await asyncio.sleep(3)
        after = rss_mib(server.pid)
        print(f"idle SSE connections: {len(ready)}; server RSS before {before:.1f} MiB, "
              f"with connections {after:.1f} MiB ({(after - before) * 1024 / max(len(ready), 1):.1f} KiB each)")
        for _, w in conns:
            w.close()
    finally:
        server.terminate(); server.wait()


asyncio.run(main())
