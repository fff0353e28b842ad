// Compatibility with OpenAI's own Node SDK (package `openai`, version pinned in package.json)
// pointed at Threadline with a personal API key: the model list, a completion answered whole and
// streamed with its usage, a tool call and its result sent back, an unknown model as the SDK's
// NotFoundError, and a spent plan as its RateLimitError — with the calls in the caller's ledger.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import OpenAI, { NotFoundError, RateLimitError } from "openai";
import { startServer, signIn } from "../server.mjs";

// Five credits a day for registered accounts; gpt-4o-mini (the mock upstream) costs one.
const CREDITS = 5;
let server;
let client;
let session;

before(async () => {
  server = await startServer({ plans: `tiers:\n  free:\n    credits: {limit: ${CREDITS}, window: day}\n` });
  session = await signIn(server.base, "admin@example.com");
  const res = await fetch(`${server.base}/v1/me/api-keys`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${session}` },
    body: JSON.stringify({ name: "openai-sdk" }),
  });
  assert.equal(res.status, 201);
  // No retries: a 429 is to reach the test, not to be waited out.
  client = new OpenAI({ apiKey: (await res.json()).secret, baseURL: `${server.base}/v1`, maxRetries: 0 });
});

after(() => server?.stop());

const ask = (text) => [
  { role: "system", content: "Be brief." },
  { role: "user", content: text },
];

async function used() {
  const res = await fetch(`${server.base}/v1/me/usage`, { headers: { authorization: `Bearer ${session}` } });
  const usage = await res.json();
  return usage.meters.find((m) => m.meter === "credits").used;
}

test("models.list() reads the catalog", async () => {
  const ids = [];
  for await (const model of client.models.list()) {
    assert.equal(model.object, "model");
    assert.equal(typeof model.created, "number");
    ids.push(model.id);
    if (model.id === "gpt-4o-mini") assert.equal(model.owned_by, "openai");
  }
  assert.ok(ids.includes("echo") && ids.includes("gpt-4o-mini"), ids.join());
});

test("a completion answered whole has its text, finish reason and usage", async () => {
  const completion = await client.chat.completions.create({ model: "echo", messages: ask("hello there") });
  assert.equal(completion.object, "chat.completion");
  assert.equal(completion.model, "echo");
  assert.equal(completion.choices[0].message.content, "Echo: hello there");
  assert.equal(completion.choices[0].finish_reason, "stop");
  const { prompt_tokens, completion_tokens, total_tokens } = completion.usage;
  assert.equal(total_tokens, prompt_tokens + completion_tokens);
});

test("a streamed completion arrives in chunks and ends with its usage", async () => {
  const stream = await client.chat.completions.create({
    model: "gpt-4o-mini",
    messages: ask("Tell me something"),
    max_tokens: 50,
    temperature: 0.2,
    stream: true,
    stream_options: { include_usage: true },
  });
  let text = "";
  let finish;
  let usage;
  let chunks = 0;
  for await (const chunk of stream) {
    chunks++;
    assert.equal(chunk.object, "chat.completion.chunk");
    const choice = chunk.choices[0];
    if (choice?.delta.content) text += choice.delta.content;
    if (choice?.finish_reason) finish = choice.finish_reason;
    if (chunk.usage) usage = chunk.usage;
  }
  assert.ok(chunks > 2, `${chunks} chunks`);
  // The mock upstream answers 20 words by default.
  assert.equal(text.trim().split(/\s+/).length, 20, text);
  assert.equal(finish, "stop");
  assert.ok(usage.completion_tokens > 0 && usage.prompt_tokens > 0, JSON.stringify(usage));
  // The SDK's own accumulator agrees.
  const final = await client.chat.completions
    .stream({ model: "echo", messages: ask("again"), stream_options: { include_usage: true } })
    .finalChatCompletion();
  assert.equal(final.choices[0].message.content, "Echo: again");
});

test("a tool call ends the reply, and its result sent back is answered", async () => {
  const put = await fetch(`${server.base}/v1/admin/models/sdk-tools`, {
    method: "PUT",
    headers: { "content-type": "application/json", authorization: `Bearer ${session}` },
    body: JSON.stringify({
      provider: "openai",
      upstream: "mock:len=3,tools=lookup",
      capabilities: ["tools"],
      access: "public",
      credits: 0,
      prices: { input: 0, output: 0, cached_input: 0, reasoning: 0 },
      enabled: true,
    }),
  });
  assert.equal(put.status, 200, await put.text());
  const tools = [
    {
      type: "function",
      function: { name: "lookup", description: "Look a word up", parameters: { type: "object", properties: { query: { type: "string" } } } },
    },
  ];
  const messages = ask("lisbon");
  const first = await client.chat.completions.create({ model: "sdk-tools", messages, tools, tool_choice: "auto" });
  const choice = first.choices[0];
  assert.equal(choice.finish_reason, "tool_calls");
  const [call] = choice.message.tool_calls;
  assert.equal(call.function.name, "lookup");
  assert.deepEqual(JSON.parse(call.function.arguments), { query: "lisbon" });
  messages.push(choice.message, { role: "tool", tool_call_id: call.id, content: "a city in Portugal" });
  const second = await client.chat.completions.create({ model: "sdk-tools", messages, tools });
  assert.equal(second.choices[0].finish_reason, "stop");
  // The mock upstream's answer to a request carrying tool results starts with the last result.
  assert.match(second.choices[0].message.content, /^result: a city in Portugal/);
});

test("an unknown model is the SDK's NotFoundError", async () => {
  await assert.rejects(
    client.chat.completions.create({ model: "no-such-model", messages: ask("x") }),
    (err) => {
      assert.ok(err instanceof NotFoundError, String(err));
      assert.equal(err.status, 404);
      assert.equal(err.code, "model_not_found");
      assert.match(err.message, /no-such-model/);
      return true;
    },
  );
});

test("a spent plan is the SDK's RateLimitError, and every call is in the ledger", async () => {
  const before = await used();
  let spent = 0;
  let refused;
  for (let i = 0; i <= CREDITS; i++) {
    try {
      await client.chat.completions.create({ model: "gpt-4o-mini", messages: ask("hi") });
      spent++;
    } catch (err) {
      refused = err;
      break;
    }
  }
  assert.ok(refused instanceof RateLimitError, String(refused));
  assert.equal(refused.status, 429);
  assert.equal(refused.type, "insufficient_quota");
  assert.equal(refused.code, "quota_exceeded");
  assert.ok(refused.headers.get("retry-after"));
  assert.equal(before + spent, CREDITS);
  assert.equal(await used(), CREDITS);
});
