// Cross-cutting journeys of the web app: the daily limit and its reset time, a share link
// opened logged out, the page's security (CSP, HttpOnly session, messages as text), keyboard
// use, and the phone-width layout. Each journey saves a screenshot (tests/e2e/screenshots/).
import {
  test, expect, screenshot, send, waitForReply, lastMessage, composer, apiCall, watchErrors,
} from './harness.mjs';

const cspErrors = (errors) => errors.filter((e) => /Content[- ]Security[- ]Policy|Trusted ?Type|TrustedHTML|TrustedScript/i.test(e));

async function chooseModel(page, id) {
  await page.locator('button[aria-label=Model]').click();
  const option = page.locator(`[role=option][data-model="${id}"]`);
  await expect(option).toBeVisible();
  await option.click();
  await expect(page.locator('button[aria-label=Model]')).toContainText(id);
}

/** A catalog model of 1 credit answered by the mock upstream (other spec files on the same
 * server may change the default catalog's models, so this journey brings its own). */
async function defineMeteredModel(server, id) {
  const res = await fetch(`${server.url}/v1/admin/models/${id}`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${server.admin.token}` },
    body: JSON.stringify({
      provider: 'openai', upstream: 'mock:len=8', capabilities: [], access: 'public', credits: 1,
      prices: { input: 0, output: 0, cached_input: 0, reasoning: 0 }, enabled: true,
    }),
  });
  expect(res.status, await res.text()).toBe(200);
}

test('the daily limit: the usage indicator and the refusal say when the credits reset', async ({ server, newAnonymousPage }) => {
  await defineMeteredModel(server, 'e2e-metered');
  const page = await newAnonymousPage();
  const errors = watchErrors(page);
  const usage = page.locator('[data-testid=usage]');
  await expect(usage).toContainText('3 of 3 credits');

  // The model costs 1 credit; the anonymous tier has 3 a day here (harness DEFAULT_PLANS).
  await chooseModel(page, 'e2e-metered');
  for (let i = 1; i <= 3; i++) {
    await send(page, `Question ${i}`);
    const reply = await waitForReply(page);
    await expect(reply).toContainText('w0 w1');
    await expect(page.locator('article.message[data-role=assistant]')).toHaveCount(i);
  }
  await expect(usage).toContainText('0 of 3 credits');
  await expect(usage).toContainText(/resets (today|tomorrow) at \d/);

  await send(page, 'One more, please');
  const problem = page.locator('.composer-error');
  await expect(problem).toBeVisible();
  await expect(problem).toContainText(/used today's credits/i);
  await expect(problem).toContainText(/reset (today|tomorrow) at \d/);
  // What was typed is kept, and no fourth reply started.
  await expect(composer(page)).toHaveValue('One more, please');
  await expect(page.locator('article.message[data-role=assistant]')).toHaveCount(3);

  // The time shown is the server's resets_at (the plans' day ends at midnight UTC; the browser
  // runs in UTC).
  const { body } = await apiCall(page, 'GET', '/v1/me/usage');
  const meter = body.meters.find((m) => m.meter === 'credits');
  expect(meter.remaining).toBe(0);
  const shown = await page.evaluate((iso) => new Date(iso).toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' }), meter.resets_at);
  await expect(usage).toContainText(shown);
  await expect(problem).toContainText(shown);
  await screenshot(page, 'daily-limit');
  expect(cspErrors(errors)).toEqual([]);
});

test('a share link opens logged out and shows the messages', async ({ newAnonymousPage, newPage }) => {
  const owner = await newAnonymousPage();
  await send(owner, 'Shared hello');
  await expect(await waitForReply(owner)).toContainText('Echo: Shared hello');
  await expect(owner).toHaveURL(/\/t\/[A-Za-z0-9_-]+$/);

  await owner.locator('button[aria-label=Share]').click();
  const link = owner.locator('input[aria-label="Share link"]');
  await expect(link).toBeVisible();
  const url = await link.inputValue();
  expect(url).toMatch(/\/s\/[A-Za-z0-9_-]+$/);
  await screenshot(owner, 'share-dialog');

  const visitor = await newPage();
  const errors = watchErrors(visitor);
  await visitor.goto(new URL(url).pathname);
  await expect(lastMessage(visitor, 'user')).toContainText('Shared hello');
  await expect(lastMessage(visitor, 'assistant')).toContainText('Echo: Shared hello');
  // Reading a share starts no session: the visitor has no cookies.
  const cookies = await visitor.context().cookies();
  expect(cookies.map((c) => c.name)).not.toContain('threadline_session');
  await expect(visitor.locator('textarea[aria-label=Message]')).toHaveCount(0);
  await screenshot(visitor, 'share-link-logged-out');
  expect(cspErrors(errors)).toEqual([]);
});

test('security: strict CSP, HttpOnly session, message markup rendered as text', async ({ newPage }) => {
  const page = await newPage();
  const errors = watchErrors(page);
  const dialogs = [];
  page.on('dialog', async (d) => { dialogs.push(d.message()); await d.dismiss(); });

  const response = await page.goto('/');
  const csp = response.headers()['content-security-policy'];
  expect(csp).toBeTruthy();
  const directives = Object.fromEntries(csp.split(';').map((d) => d.trim().split(/\s+/)).filter((d) => d[0]).map(([k, ...v]) => [k, v]));
  expect(directives['script-src']).toEqual(["'self'"]);
  expect(csp).not.toContain('unsafe-inline');
  expect(csp).not.toContain('unsafe-eval');
  expect(directives['require-trusted-types-for']).toEqual(["'script'"]);
  expect(directives['frame-ancestors']).toEqual(["'none'"]);

  await expect(composer(page)).toBeVisible();
  const session = (await page.context().cookies()).find((c) => c.name === 'threadline_session');
  expect(session, 'the app started a cookie session').toBeTruthy();
  expect(session.httpOnly).toBe(true);
  expect(await page.evaluate(() => document.cookie)).not.toContain('threadline_session');

  const evil = '<img src=x onerror=alert(1)> and <script>alert(2)</script> and <b>bold</b>';
  await send(page, evil);
  const reply = await waitForReply(page);
  await expect(reply).toContainText('Echo:');
  const user = lastMessage(page, 'user');
  await expect(user).toContainText('<img src=x onerror=alert(1)>');
  await expect(user).toContainText('<script>alert(2)</script>');
  // Nothing of it became markup, in the question or in the echoed answer.
  for (const msg of [user, reply]) {
    await expect(msg.locator('img')).toHaveCount(0);
    await expect(msg.locator('script')).toHaveCount(0);
    await expect(msg.locator('b')).toHaveCount(0);
  }
  await page.reload();
  await expect(lastMessage(page, 'user')).toContainText('<img src=x onerror=alert(1)>');
  await expect(page.locator('article.message img')).toHaveCount(0);
  await page.waitForTimeout(300);
  expect(dialogs).toEqual([]);
  await screenshot(page, 'security-markup-as-text');
  expect(cspErrors(errors)).toEqual([]);
});

test('keyboard: Tab reaches the composer and Enter sends', async ({ newPage }) => {
  const page = await newPage();
  await page.goto('/');
  const box = composer(page);
  await expect(box).toBeVisible();
  // Start from the top of the document, as a keyboard user arriving at the page.
  await page.locator('body').focus();
  await page.evaluate(() => document.activeElement?.blur());
  let reached = false;
  for (let i = 0; i < 40 && !reached; i++) {
    await page.keyboard.press('Tab');
    reached = await box.evaluate((el) => el === document.activeElement);
  }
  expect(reached, 'Tab reaches the message box').toBe(true);
  // The focused element is visibly marked.
  const outline = await box.evaluate((el) => {
    const s = getComputedStyle(el);
    const parent = getComputedStyle(el.closest('form') || el);
    return [s.outlineStyle, s.boxShadow, parent.outlineStyle, parent.boxShadow].join(' ');
  });
  expect(outline).not.toBe('none none none none');
  await page.keyboard.type('Typed with the keyboard');
  await page.keyboard.press('Enter');
  await expect(lastMessage(page, 'user')).toContainText('Typed with the keyboard');
  await expect(await waitForReply(page)).toContainText('Echo: Typed with the keyboard');
  await expect(box).toHaveValue('');
  // Shift+Enter is a new line, not a send.
  await box.focus();
  await page.keyboard.type('line one');
  await page.keyboard.press('Shift+Enter');
  await page.keyboard.type('line two');
  await expect(box).toHaveValue('line one\nline two');
  await expect(page.locator('article.message[data-role=user]')).toHaveCount(1);
  await screenshot(page, 'keyboard');
});

test('phone width (375 px): the composer and the messages are visible', async ({ newPage }) => {
  const page = await newPage({ viewport: { width: 375, height: 740 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
  await page.goto('/');
  const box = composer(page);
  await expect(box).toBeVisible();
  await send(page, 'Hello from a phone. This question is long enough to wrap onto a second line at this width.');
  await expect(await waitForReply(page)).toContainText('Echo: Hello from a phone.');
  await expect(lastMessage(page, 'user')).toBeInViewport();
  await expect(lastMessage(page, 'assistant')).toBeInViewport();
  await expect(box).toBeInViewport();
  await expect(page.locator('button[aria-label=Send]')).toBeInViewport();
  const overflow = await page.evaluate(() => document.scrollingElement.scrollWidth - window.innerWidth);
  expect(overflow, 'no sideways scrolling').toBeLessThanOrEqual(1);
  const box375 = await box.boundingBox();
  expect(box375.x).toBeGreaterThanOrEqual(0);
  expect(box375.x + box375.width).toBeLessThanOrEqual(376);
  await screenshot(page, 'mobile-375');
});
