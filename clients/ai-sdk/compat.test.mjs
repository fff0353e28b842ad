// Compatibility with the real client: the Vercel AI SDK's own transport and stream reader
// (package `ai`, version pinned in package.json) against a running Threadline server.
//
// Starts `THREADLINE_BIN` (default ../../target/debug/threadline) on a free port with a fresh
// data dir (or the database of COMPAT_DATABASE_URL when set), then: send, resume (204 and
// active), stop, regenerate.
// Every assembled UIMessage must equal what GET /v1/threads/{id} returns.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import net from "node:net";
import { DefaultChatTransport, readUIMessageStream } from "ai";

const bin = process.env.THREADLINE_BIN ?? new URL("../../target/debug/threadline", import.meta.url).pathname;
let server;
let base;
let dataDir;
let token;

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

async function waitReady() {
  for (let i = 0; i < 200; i++) {
    try {
      const res = await fetch(`${base}/readyz`);
      if (res.ok) return;
    } catch {}
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error("server did not start");
}

before(async () => {
  dataDir = mkdtempSync(join(tmpdir(), "threadline-compat-"));
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  const env = {
    ...process.env,
    THREADLINE_BIND: `127.0.0.1:${port}`,
    THREADLINE_DATA_DIR: dataDir,
    THREADLINE_ECHO_DELAY_MS: "15",
    THREADLINE_ANON_PER_MINUTE: "0",
    RUST_LOG: "warn",
  };
  // Only the built-in echo model: no provider keys or model choices from the environment.
  for (const key of Object.keys(env)) {
    if (key.endsWith("_API_KEY") || key.startsWith("THREADLINE_") && key.endsWith("_MODEL")) delete env[key];
  }
  if (process.env.COMPAT_DATABASE_URL) env.DATABASE_URL = process.env.COMPAT_DATABASE_URL;
  else delete env.DATABASE_URL;
  server = spawn(bin, ["serve"], { env, stdio: ["ignore", "inherit", "inherit"] });
  await waitReady();
  const res = await fetch(`${base}/v1/auth/anonymous`, { method: "POST" });
  assert.equal(res.status, 201);
  token = (await res.json()).token;
});

after(() => {
  server?.kill("SIGTERM");
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

function transport() {
  return new DefaultChatTransport({ api: `${base}/v1/chat`, headers: { authorization: `Bearer ${token}` } });
}

async function assemble(stream) {
  let last;
  for await (const message of readUIMessageStream({ stream })) last = message;
  return last;
}

async function thread(id) {
  const res = await fetch(`${base}/v1/threads/${id}`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(res.status, 200);
  return res.json();
}

async function settled(id) {
  for (let i = 0; i < 200; i++) {
    const t = await thread(id);
    const last = t.messages.at(-1);
    if (t.active_generation_id === null && last?.metadata.status !== "streaming") return t;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error("reply never finished");
}

function userMessage(id, text) {
  return { id, role: "user", parts: [{ type: "text", text }] };
}

// What the client keeps of a message: id, role and parts (metadata is the server's extra),
// compared as JSON (the SDK leaves `undefined` fields such as `providerMetadata` on parts).
function visible(message) {
  return JSON.parse(JSON.stringify({ id: message.id, role: message.role, parts: message.parts }));
}

test("a sent message is assembled by the SDK exactly as the thread stores it", async () => {
  const stream = await transport().sendMessages({
    chatId: "sdk-send",
    messages: [userMessage("u1", "Hello from the SDK")],
    trigger: "submit-message",
    messageId: undefined,
    abortSignal: undefined,
  });
  const assembled = await assemble(stream);
  assert.equal(assembled.role, "assistant");
  assert.equal(assembled.parts.find((p) => p.type === "text").text, "Echo: Hello from the SDK");
  assert.deepEqual(assembled.metadata, { model: "echo" });
  const stored = await settled("sdk-send");
  assert.deepEqual(visible(assembled), visible(stored.messages[1]));
});

test("reconnecting with nothing streaming gets null (204)", async () => {
  const stream = await transport().reconnectToStream({ chatId: "sdk-send" });
  assert.equal(stream, null);
});

test("reconnecting to an active reply replays it from the start and follows it to the end", async () => {
  const text = Array.from({ length: 60 }, (_, i) => `word${i}`).join(" ");
  const controller = new AbortController();
  const first = await transport().sendMessages({
    chatId: "sdk-resume",
    messages: [userMessage("u1", text)],
    trigger: "submit-message",
    abortSignal: controller.signal,
  });
  const reader = first.getReader();
  await reader.read();
  await reader.read();
  controller.abort(); // the tab closes mid-reply
  const resumed = await transport().reconnectToStream({ chatId: "sdk-resume" });
  assert.ok(resumed, "an active reply resumes");
  const assembled = await assemble(resumed);
  assert.equal(assembled.parts.find((p) => p.type === "text").text, `Echo: ${text}`);
  const stored = await settled("sdk-resume");
  assert.deepEqual(visible(assembled), visible(stored.messages[1]));
});

test("stop ends the reply for the SDK and keeps the partial text", async () => {
  const text = Array.from({ length: 300 }, (_, i) => `word${i}`).join(" ");
  const stream = await transport().sendMessages({
    chatId: "sdk-stop",
    messages: [userMessage("u1", text)],
    trigger: "submit-message",
  });
  const assembling = assemble(stream);
  await new Promise((r) => setTimeout(r, 200));
  const res = await fetch(`${base}/v1/chat/sdk-stop/stop`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}` },
  });
  assert.equal(res.status, 200);
  const assembled = await assembling;
  const partial = assembled.parts.find((p) => p.type === "text").text;
  assert.ok(partial.length > 0 && partial.length < `Echo: ${text}`.length);
  const stored = await settled("sdk-stop");
  assert.equal(stored.messages[1].metadata.status, "stopped");
  assert.deepEqual(visible(assembled), visible(stored.messages[1]));
});

test("regenerate makes a new sibling reply that the thread then shows", async () => {
  const before = await settled("sdk-send");
  const stream = await transport().sendMessages({
    chatId: "sdk-send",
    messages: before.messages.map(visible),
    trigger: "regenerate-message",
    messageId: before.messages[1].id,
  });
  const assembled = await assemble(stream);
  assert.notEqual(assembled.id, before.messages[1].id);
  const stored = await settled("sdk-send");
  assert.deepEqual(visible(assembled), visible(stored.messages[1]));
  assert.equal(stored.messages[1].metadata.sibling_ids.length, 2);
});
