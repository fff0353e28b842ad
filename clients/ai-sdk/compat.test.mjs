// Compatibility with the real client: the Vercel AI SDK's own transport and stream reader
// (package `ai`, version pinned in package.json) against a running Threadline server.
//
// Starts a server with its mock upstream (../server.mjs), then: send, resume (204 and
// active), stop, regenerate, a reply whose model calls tools over two steps, and a research
// run's data parts.
// Every assembled UIMessage must equal what GET /v1/threads/{id} returns.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { DefaultChatTransport, readUIMessageStream } from "ai";
import { startServer, signIn } from "../server.mjs";

let server;
let base;
let token;

before(async () => {
  // Anonymous callers may run research here (the default plans keep it for pro accounts).
  server = await startServer({
    plans: "tiers:\n  anonymous:\n    research_runs: {limit: 2, window: day}\n",
    env: { THREADLINE_ECHO_DELAY_MS: "15" },
  });
  base = server.base;
  const res = await fetch(`${base}/v1/auth/anonymous`, { method: "POST" });
  assert.equal(res.status, 201);
  token = (await res.json()).token;
});

after(() => server?.stop());

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

// A catalog model with the `tools` capability whose mock upstream answers `script` (see
// src/mock_upstream/tools.rs), defined by an admin account.
async function defineScriptedModel(id, script) {
  const admin = await signIn(base, "admin@example.com");
  const knob = Buffer.from(JSON.stringify(script)).toString("base64url");
  const put = await fetch(`${base}/v1/admin/models/${id}`, {
    method: "PUT",
    headers: { "content-type": "application/json", authorization: `Bearer ${admin}` },
    body: JSON.stringify({
      provider: "openai",
      upstream: `mock:len=2,script=${knob}`,
      capabilities: ["tools"],
      access: "public",
      credits: 1,
      prices: { input: 0, output: 0, cached_input: 0, reasoning: 0 },
      enabled: true,
    }),
  });
  assert.equal(put.status, 200, await put.text());
}

test("a reply that calls a tool over two steps is assembled with its tool part", async () => {
  await defineScriptedModel("sdk-tools", [
    { call: { name: "web_search", arguments: { query: "rust" } } },
    { text: "found {result}" },
  ]);
  const chat = new DefaultChatTransport({
    api: `${base}/v1/chat`,
    headers: { authorization: `Bearer ${token}` },
    body: { model: "sdk-tools", tools: ["web_search"] },
  });
  const stream = await chat.sendMessages({
    chatId: "sdk-tools",
    messages: [userMessage("u1", "search for rust")],
    trigger: "submit-message",
  });
  const assembled = await assemble(stream);
  const types = assembled.parts.map((p) => p.type);
  assert.deepEqual(types, ["step-start", "dynamic-tool", "step-start", "text"]);
  const tool = assembled.parts[1];
  assert.equal(tool.toolName, "web_search");
  assert.equal(tool.state, "output-available");
  assert.deepEqual(tool.input, { query: "rust" });
  assert.equal(tool.output[0].url, "https://example.com/rust/1");
  assert.match(assembled.parts[3].text, /^found /);
  const stored = await settled("sdk-tools");
  assert.deepEqual(visible(assembled), visible(stored.messages[1]));
});

test("a research run's data parts are assembled in order before the answer", async () => {
  await defineScriptedModel("sdk-writer", []);
  const chat = new DefaultChatTransport({
    api: `${base}/v1/chat`,
    headers: { authorization: `Bearer ${token}` },
    body: { model: "sdk-writer", tool: "research" },
  });
  const stream = await chat.sendMessages({
    chatId: "sdk-research",
    messages: [userMessage("u1", "how do crabs molt")],
    trigger: "submit-message",
  });
  const assembled = await assemble(stream);
  const research = assembled.parts.filter((p) => p.type.startsWith("data-research-")).map((p) => p.type);
  assert.equal(research[0], "data-research-start");
  assert.equal(research.at(-1), "data-research-complete");
  assert.ok(research.includes("data-research-search") && research.includes("data-research-read"), research.join());
  assert.equal(assembled.parts.at(-1).type, "text");
  const stored = await settled("sdk-research");
  assert.deepEqual(visible(assembled), visible(stored.messages[1]));
});
