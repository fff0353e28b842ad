// Starts a Threadline server for the client compatibility tests: `THREADLINE_BIN` (default
// ../target/debug/threadline) on a free loopback port with a fresh data dir (or the database of
// COMPAT_DATABASE_URL when set), and its mock upstream beside it as the OpenAI and Exa
// upstreams. Provider keys, base URLs and model choices from the environment are dropped, so
// the catalog is the mock's and the built-in echo model's.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import net from "node:net";

const bin = process.env.THREADLINE_BIN ?? new URL("../target/debug/threadline", import.meta.url).pathname;

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
    srv.on("error", reject);
  });
}

async function waitReady(url, ok = (res) => res.ok) {
  for (let i = 0; i < 200; i++) {
    try {
      const res = await fetch(url);
      if (ok(res)) return;
    } catch {}
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${url} did not start`);
}

/// `plans` is the YAML of THREADLINE_PLANS_FILE; `env` adds to the server's environment.
/// Resolves to `{ base, stop }`; `admin@example.com` is an admin.
export async function startServer({ plans, env: extra = {} } = {}) {
  const dataDir = mkdtempSync(join(tmpdir(), "threadline-compat-"));
  const port = await freePort();
  const mockPort = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const mockRoot = `http://127.0.0.1:${mockPort}`;
  const mock = spawn(bin, ["mock-upstream", "--bind", `127.0.0.1:${mockPort}`], { stdio: ["ignore", "inherit", "inherit"] });
  await waitReady(`${mockRoot}/v1/models`, () => true);
  const env = { ...process.env };
  for (const key of Object.keys(env)) {
    if (key.endsWith("_API_KEY") || key.endsWith("_BASE_URL") || key.startsWith("THREADLINE_") && key.endsWith("_MODEL")) delete env[key];
  }
  Object.assign(env, {
    THREADLINE_BIND: `127.0.0.1:${port}`,
    THREADLINE_DATA_DIR: dataDir,
    THREADLINE_ANON_PER_MINUTE: "0",
    RUST_LOG: "warn",
    OPENAI_API_KEY: "mock-key",
    OPENAI_BASE_URL: `${mockRoot}/v1`,
    EXA_API_KEY: "mock-key",
    EXA_BASE_URL: mockRoot,
    THREADLINE_DEFAULT_MODEL: "echo",
    THREADLINE_ADMIN_EMAILS: "admin@example.com",
    ...extra,
  });
  if (plans) {
    env.THREADLINE_PLANS_FILE = join(dataDir, "compat-plans.yaml");
    writeFileSync(env.THREADLINE_PLANS_FILE, plans);
  }
  if (process.env.COMPAT_DATABASE_URL) env.DATABASE_URL = process.env.COMPAT_DATABASE_URL;
  else delete env.DATABASE_URL;
  const server = spawn(bin, ["serve"], { env, stdio: ["ignore", "inherit", "inherit"] });
  await waitReady(`${base}/readyz`);
  return {
    base,
    stop() {
      server.kill("SIGTERM");
      mock.kill("SIGTERM");
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/// A session token of `email` (registered on first use, else logged in).
export async function signIn(base, email, password = "correct horse battery staple") {
  const post = (path) =>
    fetch(`${base}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email, password }),
    });
  let res = await post("/v1/auth/register");
  if (res.status !== 201) res = await post("/v1/auth/login");
  if (!res.ok) throw new Error(`cannot sign in ${email}: ${res.status} ${await res.text()}`);
  return (await res.json()).token;
}
