// The browser-test harness: starts Threadline (and its mock upstream) for the Playwright
// journeys and hands the tests a server, fresh browser contexts and small helpers.
//
// USAGE (in a spec file next to this one):
//
//   import { test, expect, screenshot, signUp, send, waitForReply, uniqueEmail } from './harness.mjs';
//
//   test('anonymous first message', async ({ page, server }) => {
//     await page.goto('/');                      // baseURL is the server of this worker
//     await send(page, 'Hello');                 // fills textarea[aria-label=Message], presses Enter
//     await waitForReply(page);                  // the last assistant article, Stop gone
//     await screenshot(page, 'chat-first-message'); // web/tests/e2e/screenshots/chat-first-message.png
//   });
//
// Fixtures (besides Playwright's own `page`, `context`, `browser`, `request`):
//   server          worker-scoped: {url, mockUrl, admin: {email, password, token}, dataDir,
//                   database, logFile} (admin.token: a bearer token for /v1/admin/* calls). One `threadline serve` + one `threadline mock-upstream` per worker,
//                   fresh data dir (and a fresh PostgreSQL database when E2E_DATABASE_URL is set).
//                   The admin account (admin@example.com) is registered at start.
//   serverOptions   worker-scoped option: {plans?: string (YAML), env?: {VAR: value}}.
//                   `test.use({ serverOptions: { plans: '...' } })` at the TOP LEVEL of a spec
//                   file gives that file servers of its own (Playwright refuses it inside a
//                   describe: it forces a new worker). For one describe, use startServer().
//                   Spec files with default options may share a worker's server one after the
//                   other: catalog edits made by one file are seen by the next (define models
//                   of your own rather than editing the default ones).
//   newPage()       test-scoped: () => Promise<Page>, a page in a fresh browser context (no
//                   cookies: a new anonymous visitor once it opens the app). Closed after the test.
//   newAnonymousPage()  same as newPage() but already at `/` with the composer visible.
//   adminPage       test-scoped: a Page in its own context, logged in as the admin, at `/`.
//   pageErrors      test-scoped: array of uncaught page errors and console errors of `page`
//                   (CSP violations included); journeys may assert it is empty.
//
// Helpers (plain functions):
//   screenshot(page, name)              saves web/tests/e2e/screenshots/<name>.png (viewport)
//   uniqueEmail(prefix?)                'prefix-<random>@example.com'
//   signUp(page, email, password?)      through the /signup form; resolves once back at `/`
//   logIn(page, email, password)        through the /login form; resolves once back at `/`
//   apiCall(page, method, path, body?)  same-origin API call with the page's cookies (and the
//                                       CSRF header): {status, headers, body} (body parsed JSON
//                                       when it is JSON). Starts no session by itself.
//   send(page, text)                    types into the composer and presses Enter
//   waitForReply(page, {timeout?})      waits for the newest assistant message to finish
//                                       (Stop hidden, Send visible); returns its Locator
//   lastMessage(page, role)             Locator of the last article.message[data-role=role]
//   startServer(options)                the same stack outside a fixture: {…server, stop()}
//   PASSWORD                            the default password signUp uses
//   DEFAULT_PLANS                       the plans YAML the servers get unless overridden
//
// Environment: THREADLINE_BIN (default ../target/debug/threadline from web/), E2E_DATABASE_URL
// (an admin URL of a PostgreSQL server: each server gets its own database, dropped at the end),
// E2E_WEB_DIR (serve the app from this directory instead of the embedded copy),
// E2E_ECHO_DELAY_MS (default 30), E2E_SERVER_LOG=1 (server logs to the terminal too).

import { test as base, expect } from '@playwright/test';
import { spawn, execFileSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import net from 'node:net';

const here = dirname(fileURLToPath(import.meta.url));
export const WEB_ROOT = resolve(here, '../..');
export const SCREENSHOT_DIR = join(here, 'screenshots');
export const PASSWORD = 'correct horse battery staple';
export const ADMIN = { email: 'admin@example.com', password: PASSWORD };

/**
 * Plans of the test servers: the anonymous tier has 3 credits a day (three 1-credit messages,
 * e.g. `gpt-4o-mini`; `echo`, the default model here, costs nothing), so a journey can use them up.
 * Registered (free) accounts get 10. Research is allowed for anonymous and free accounts.
 */
export const DEFAULT_PLANS = `time_zone: UTC
tiers:
  anonymous:
    credits: {limit: 3, window: day}
    web_searches: {limit: 5, window: day}
    research_runs: {limit: 2, window: day}
  free:
    credits: {limit: 10, window: day}
    web_searches: {limit: 5, window: day}
    research_runs: {limit: 2, window: day}
  pro:
    credits: {limit: 200, window: day}
    web_searches: {limit: 50, window: day}
    research_runs: {limit: 5, window: day}
`;

export function binary() {
  return resolve(process.env.THREADLINE_BIN || join(WEB_ROOT, '../target/debug/threadline'));
}

function freePort() {
  return new Promise((ok, fail) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => ok(port));
    });
    srv.on('error', fail);
  });
}

async function waitFor(url, child, what, accept = (res) => res.ok) {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${what} exited with ${child.exitCode} before it was ready`);
    try {
      const res = await fetch(url);
      if (accept(res)) return;
    } catch { /* not listening yet */ }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what} did not get ready at ${url}`);
}

// Every child process of this worker, killed on exit even when a fixture's teardown never runs.
const children = new Set();
process.on('exit', () => { for (const c of children) try { c.kill('SIGKILL'); } catch { /* gone */ } });

function launch(args, env, logFile) {
  const fd = openSync(logFile, 'a');
  const stdio = process.env.E2E_SERVER_LOG ? ['ignore', 'inherit', 'inherit'] : ['ignore', fd, fd];
  const child = spawn(binary(), args, { env, stdio });
  children.add(child);
  child.on('exit', () => children.delete(child));
  return child;
}

async function stopChild(child) {
  if (!child || child.exitCode !== null || child.signalCode) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

function psqlBinary() {
  const pg = process.env.THREADLINE_PG_BIN;
  if (pg && existsSync(join(pg, 'psql'))) return join(pg, 'psql');
  for (const dir of ['/usr/bin', '/usr/local/bin']) if (existsSync(join(dir, 'psql'))) return join(dir, 'psql');
  try {
    const versions = readdirSync('/usr/lib/postgresql').sort().reverse();
    for (const v of versions) {
      const p = `/usr/lib/postgresql/${v}/bin/psql`;
      if (existsSync(p)) return p;
    }
  } catch { /* no PostgreSQL packages */ }
  return 'psql';
}

function psql(adminUrl, sql) {
  execFileSync(psqlBinary(), [adminUrl, '-v', 'ON_ERROR_STOP=1', '-qc', sql], { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** `postgres://u@h:p/postgres` → the same server's database `name`. */
function databaseUrl(adminUrl, name) {
  const u = new URL(adminUrl);
  u.pathname = `/${name}`;
  return u.toString();
}

async function apiJson(url, method, path, { body, token } = {}) {
  const headers = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(url + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, body: json ?? text };
}

/**
 * Starts a mock upstream and a server with a fresh data dir (and database). Options:
 * {plans?: YAML string, env?: extra environment, name?: label for the data dir}.
 * Returns {url, mockUrl, admin, dataDir, database, logFile, stop()}.
 */
export async function startServer(options = {}) {
  const bin = binary();
  if (!existsSync(bin)) throw new Error(`THREADLINE_BIN ${bin} does not exist (build it with cargo build --bin threadline)`);
  const dataDir = mkdtempSync(join(tmpdir(), `threadline-e2e-${options.name || 'w'}-`));
  const logFile = join(dataDir, 'server.log');
  const [port, mockPort] = [await freePort(), await freePort()];
  const url = `http://127.0.0.1:${port}`;
  const mockUrl = `http://127.0.0.1:${mockPort}`;
  let mock; let server; let database = null;
  const stop = async () => {
    await stopChild(server);
    await stopChild(mock);
    if (database) {
      try { psql(process.env.E2E_DATABASE_URL, `DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`); } catch { /* the cluster goes away anyway */ }
    }
    if (!process.env.E2E_KEEP_DATA) rmSync(dataDir, { recursive: true, force: true });
  };
  try {
    // Only the variables the server is meant to see: no provider keys, model choices or
    // database of the calling shell leak in.
    const env = {};
    for (const [k, v] of Object.entries(process.env)) {
      if (k.startsWith('THREADLINE_') || k.startsWith('OPENAI_') || k.startsWith('ANTHROPIC_') || k.startsWith('GEMINI_')
        || k.startsWith('EXA_') || k.startsWith('OPENROUTER_') || k.startsWith('DEEPSEEK_') || k.startsWith('XAI_')
        || k.startsWith('GROQ_') || k.startsWith('POLAR_') || k.startsWith('STRIPE_') || k === 'DATABASE_URL' || k === 'RUST_LOG') continue;
      env[k] = v;
    }
    mock = launch(['mock-upstream', '--bind', `127.0.0.1:${mockPort}`], env, logFile);
    await waitFor(`${mockUrl}/v1/models`, mock, 'mock-upstream', () => true);

    const plansFile = join(dataDir, 'e2e-plans.yaml');
    writeFileSync(plansFile, options.plans ?? DEFAULT_PLANS);
    Object.assign(env, {
      THREADLINE_BIND: `127.0.0.1:${port}`,
      THREADLINE_DATA_DIR: dataDir,
      THREADLINE_PLANS_FILE: plansFile,
      THREADLINE_ADMIN_EMAILS: ADMIN.email,
      THREADLINE_DEFAULT_MODEL: 'echo',
      THREADLINE_ECHO_DELAY_MS: process.env.E2E_ECHO_DELAY_MS || '30',
      THREADLINE_ANON_PER_MINUTE: '0',
      THREADLINE_REGISTRATIONS_PER_HOUR: '0',
      THREADLINE_LOGIN_FAILURES_PER_ACCOUNT: '0',
      THREADLINE_LOGIN_FAILURES_PER_IP: '0',
      THREADLINE_WORKERS: '2',
      OPENAI_API_KEY: 'mock-key',
      OPENAI_BASE_URL: `${mockUrl}/v1`,
      EXA_API_KEY: 'mock-key',
      EXA_BASE_URL: mockUrl,
      RUST_LOG: process.env.E2E_RUST_LOG || 'info',
      NO_COLOR: '1',
    });
    if (process.env.E2E_WEB_DIR) env.THREADLINE_WEB_DIR = resolve(process.env.E2E_WEB_DIR);
    if (process.env.E2E_DATABASE_URL) {
      database = `tl_e2e_${randomBytes(6).toString('hex')}`;
      psql(process.env.E2E_DATABASE_URL, `CREATE DATABASE "${database}"`);
      env.DATABASE_URL = databaseUrl(process.env.E2E_DATABASE_URL, database);
    }
    Object.assign(env, options.env || {});
    server = launch(['serve'], env, logFile);
    await waitFor(`${url}/readyz`, server, 'threadline serve');

    const reg = await apiJson(url, 'POST', '/v1/auth/register', { body: ADMIN });
    if (reg.status !== 201) throw new Error(`registering the admin answered ${reg.status}: ${JSON.stringify(reg.body)}`);
    return { url, mockUrl, admin: { ...ADMIN, token: reg.body.token }, dataDir, database, logFile, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** Playwright's test, extended with the fixtures described at the top of this file. */
export const test = base.extend({
  serverOptions: [{}, { scope: 'worker', option: true }],

  server: [async ({ serverOptions }, use, workerInfo) => {
    const s = await startServer({ ...serverOptions, name: `w${workerInfo.workerIndex}` });
    try {
      await use(s);
    } finally {
      // Keep the server's log beside the test results of this worker.
      try {
        const out = join(workerInfo.project.outputDir, `server-worker${workerInfo.workerIndex}.log`);
        mkdirSync(dirname(out), { recursive: true });
        appendFileSync(out, readFileSync(s.logFile));
      } catch { /* no log */ }
      await s.stop();
    }
  }, { scope: 'worker', timeout: 60_000 }],

  baseURL: async ({ server }, use) => { await use(server.url); },

  pageErrors: async ({ page }, use) => {
    const errors = watchErrors(page);
    await use(errors);
  },

  newPage: async ({ browser, server }, use) => {
    const contexts = [];
    await use(async (options = {}) => {
      const context = await browser.newContext({ baseURL: server.url, ...options });
      contexts.push(context);
      return context.newPage();
    });
    for (const c of contexts) await c.close().catch(() => {});
  },

  newAnonymousPage: async ({ newPage }, use) => {
    await use(async (options = {}) => {
      const page = await newPage(options);
      await page.goto('/');
      await expect(composer(page)).toBeVisible();
      return page;
    });
  },

  adminPage: async ({ newPage, server }, use) => {
    const page = await newPage();
    await logIn(page, server.admin.email, server.admin.password);
    await use(page);
  },
});

export { expect };

/** Collects uncaught errors and console errors (CSP violations among them) of a page. */
export function watchErrors(page) {
  const errors = [];
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(`console: ${m.text()}`); });
  return errors;
}

export function composer(page) {
  return page.locator('textarea[aria-label=Message]');
}

export function lastMessage(page, role) {
  return page.locator(`article.message[data-role=${role}]`).last();
}

export async function screenshot(page, name) {
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  await page.screenshot({ path: join(SCREENSHOT_DIR, `${name}.png`), animations: 'disabled', caret: 'hide' });
}

export function uniqueEmail(prefix = 'user') {
  return `${prefix}-${randomBytes(5).toString('hex')}@example.com`;
}

async function authForm(page, path, email, password, button) {
  await page.goto(path);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await Promise.all([
    // The auth page reloads the app from `/` once the account is signed in.
    page.waitForURL((u) => u.pathname === '/', { timeout: 15_000 }),
    page.getByRole('button', { name: button }).click(),
  ]);
  await expect(composer(page)).toBeVisible();
}

/** Signs up through the /signup form (the browser's anonymous chats move into the account). */
export async function signUp(page, email, password = PASSWORD) {
  await authForm(page, '/signup', email, password, 'Create account');
}

/** Logs in through the /login form. */
export async function logIn(page, email, password = PASSWORD) {
  await authForm(page, '/login', email, password, 'Log in');
}

/** An API call with the page's cookies (session and CSRF), like the app's own api.js. */
export async function apiCall(page, method, path, body) {
  const context = page.context();
  const cookies = await context.cookies();
  const csrf = cookies.find((c) => c.name === 'threadline_csrf')?.value;
  const headers = {};
  if (csrf && method !== 'GET') headers['X-CSRF-Token'] = csrf;
  // Relative paths resolve against the context's baseURL (the server); the request shares the
  // context's cookie jar, so Set-Cookie answers (log in, sign up) apply to the pages too.
  const res = await context.request.fetch(path, { method, headers, data: body });
  const text = await res.text();
  let json = text;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status(), headers: res.headers(), body: json };
}

/** Types `text` into the composer and presses Enter. */
export async function send(page, text) {
  const box = composer(page);
  await box.fill(text);
  await box.press('Enter');
}

/** Waits for the newest assistant message to finish streaming; returns its Locator. */
export async function waitForReply(page, { timeout = 30_000 } = {}) {
  const msg = lastMessage(page, 'assistant');
  await expect(msg).toBeVisible({ timeout });
  await expect(page.locator('button[aria-label=Stop]')).toBeHidden({ timeout });
  await expect(page.locator('button[aria-label=Send]')).toBeVisible({ timeout });
  return msg;
}
