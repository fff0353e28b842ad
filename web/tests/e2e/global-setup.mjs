// Runs once before the browser tests: checks that the server binary and Chromium are there and
// says which versions run, so a failure to start is clear before any worker tries.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export default async function globalSetup() {
  const web = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
  const bin = resolve(process.env.THREADLINE_BIN || join(web, '../target/debug/threadline'));
  if (!existsSync(bin)) throw new Error(`THREADLINE_BIN ${bin} does not exist (cargo build --bin threadline)`);
  const chromium = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
  let version = '?';
  try { version = execFileSync(chromium, ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim(); } catch { /* reported by the launch */ }
  const db = process.env.E2E_DATABASE_URL ? 'PostgreSQL' : 'SQLite';
  const app = process.env.E2E_WEB_DIR ? `web app from ${process.env.E2E_WEB_DIR}` : 'embedded web app';
  console.log(`e2e: ${bin} (${db}, ${app}); ${version}`);
}
