// Playwright configuration of the web app's browser tests (tests/e2e/*.spec.mjs).
//
// Drives Debian's chromium (CHROMIUM_PATH, default /usr/bin/chromium) instead of a browser
// Playwright downloads: @playwright/test is pinned to the release whose bundled Chromium is the
// Debian package's major version. Each worker starts its own Threadline server and mock upstream
// (tests/e2e/harness.mjs). Run: THREADLINE_BIN=/path/to/threadline npx playwright test
import { defineConfig } from '@playwright/test';
import { existsSync } from 'node:fs';

const executablePath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
if (!existsSync(executablePath)) {
  throw new Error(`no Chromium at ${executablePath}: apt-get install -y chromium, or set CHROMIUM_PATH`);
}

export default defineConfig({
  testDir: './tests/e2e',
  testMatch: /.*\.spec\.mjs$/,
  outputDir: './test-results',
  timeout: 60_000,
  expect: { timeout: 10_000 },
  fullyParallel: false,
  workers: Number(process.env.E2E_WORKERS) || 2,
  retries: process.env.CI ? 1 : 0,
  forbidOnly: !!process.env.CI,
  reporter: process.env.CI ? [['list'], ['html', { open: 'never' }]] : [['list']],
  globalSetup: './tests/e2e/global-setup.mjs',
  use: {
    browserName: 'chromium',
    headless: true,
    viewport: { width: 1280, height: 800 },
    locale: 'en-US',
    timezoneId: 'UTC',
    colorScheme: 'light',
    trace: 'retain-on-failure',
    screenshot: 'only-on-failure',
    launchOptions: {
      executablePath,
      args: ['--disable-dev-shm-usage', '--disable-gpu'],
    },
  },
});
