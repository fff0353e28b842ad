// Account and admin journeys of the web app: sign up keeps the anonymous threads, sign-in
// errors on the fields, preferences and theme survive a reload, an API key is shown once,
// the usage / sessions / data tabs (import), an admin changes a model's credits and the chat's
// selector shows the new cost, the usage dashboard draws charts from real usage, an account's
// ledger and a grant, MCP servers, the audit trail of those changes, and the 403 page for
// everyone else.
// Each journey saves a screenshot (tests/e2e/screenshots/account-*.png, admin-*.png).
import {
  test, expect, screenshot, send, waitForReply, composer, apiCall, watchErrors, signUp, uniqueEmail, PASSWORD,
} from './harness.mjs';

const problems = (errors) => errors.filter((e) => !/Failed to load resource/.test(e));

test('sign up keeps the threads of the anonymous visitor', async ({ newAnonymousPage }) => {
  const page = await newAnonymousPage();
  const errors = watchErrors(page);
  await send(page, 'Plans for a weekend in Lisbon');
  await waitForReply(page);
  await expect(page).toHaveURL(/\/t\//);
  const threadPath = new URL(page.url()).pathname;
  await expect(page.locator(`a.thread-link[href="${threadPath}"]`)).toBeVisible();

  await page.goto('/signup');
  await expect(page.getByRole('heading', { name: 'Create your account' })).toBeVisible();
  await expect(page.locator('.auth-keep')).toContainText('kept');
  await expect(page.locator('.auth-keep')).toContainText('1 chat');
  await screenshot(page, 'account-signup');

  // A too-short password is refused on the field before anything is sent.
  await page.getByLabel('Email').fill(uniqueEmail('short'));
  await page.getByLabel('Password', { exact: true }).fill('short');
  await page.getByRole('button', { name: 'Create account' }).click();
  await expect(page.locator('#' + await page.getByLabel('Password', { exact: true }).getAttribute('id') + '-error')).toContainText('8 characters');

  const email = uniqueEmail('keeper');
  await signUp(page, email);
  const me = await apiCall(page, 'GET', '/v1/me');
  expect(me.body.kind).toBe('registered');
  expect(me.body.email).toBe(email);
  // The thread moved into the account: still in the sidebar, and it opens.
  const link = page.locator(`a.thread-link[href="${threadPath}"]`);
  await expect(link).toBeVisible();
  await link.click();
  await expect(page.locator('article.message[data-role=user]').first()).toContainText('Plans for a weekend in Lisbon');
  await screenshot(page, 'account-signed-up-thread-kept');
  expect(problems(errors)).toEqual([]);
});

test('sign-in errors show on the fields: taken email, wrong password', async ({ newAnonymousPage, server }) => {
  const page = await newAnonymousPage();
  await page.goto('/signup');
  await page.getByLabel('Email').fill(server.admin.email);
  await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
  await page.getByRole('button', { name: 'Create account' }).click();
  await expect(page.locator('.form-error')).toContainText('already has an account');
  await expect(page.getByLabel('Email')).toHaveAttribute('aria-invalid', 'true');
  await page.locator('.form-error a[href="/login"]').click();
  await expect(page).toHaveURL(/\/login$/);
  await page.getByLabel('Email').fill(server.admin.email);
  await page.getByLabel('Password', { exact: true }).fill('not the password');
  await page.getByRole('button', { name: 'Log in' }).click();
  const password = page.getByLabel('Password', { exact: true });
  await expect(password).toHaveAttribute('aria-invalid', 'true');
  await expect(page.locator('.field-error:not([hidden])')).toContainText('Wrong email or password');
  await screenshot(page, 'account-login-error');
  // Still anonymous: nothing was linked.
  expect((await apiCall(page, 'GET', '/v1/me')).body.kind).toBe('anonymous');
});

test('settings: preferences and theme save and survive a reload', async ({ newAnonymousPage }) => {
  const page = await newAnonymousPage();
  const errors = watchErrors(page);
  await page.goto('/settings');
  await expect(page.locator('.settings-tabs a[aria-current=page]')).toHaveText('Profile & preferences');
  await expect(page.locator('.signup-banner')).toBeVisible();

  await page.getByLabel('Nickname').fill('Ada');
  await page.getByLabel('About you').fill('I write programs for engines.');
  await page.getByLabel('Custom instructions').fill('Answer briefly.');
  await page.getByLabel('Default model').selectOption('gpt-4o-mini');
  await page.locator('input[name=pinned_models][value="gpt-4o-mini"]').check();
  await page.getByRole('button', { name: 'Save preferences' }).click();
  await expect(page.locator('.toast')).toContainText('Preferences saved');

  // The theme applies at once and is stored on the server and in this browser.
  await page.getByRole('radio', { name: 'Dark' }).check();
  await expect(page.locator('html')).toHaveAttribute('data-theme', 'dark');
  await expect(page.locator('.theme-status')).toHaveText('Saved');

  await page.reload();
  await expect(page.locator('html')).toHaveAttribute('data-theme', 'dark');
  await expect(page.getByLabel('Nickname')).toHaveValue('Ada');
  await expect(page.getByLabel('About you')).toHaveValue('I write programs for engines.');
  await expect(page.getByLabel('Custom instructions')).toHaveValue('Answer briefly.');
  await expect(page.getByLabel('Default model')).toHaveValue('gpt-4o-mini');
  await expect(page.locator('input[name=pinned_models][value="gpt-4o-mini"]')).toBeChecked();
  await expect(page.getByRole('radio', { name: 'Dark' })).toBeChecked();
  const prefs = await apiCall(page, 'GET', '/v1/me/preferences');
  expect(prefs.body).toMatchObject({ nickname: 'Ada', default_model: 'gpt-4o-mini', theme: 'dark', custom_instructions: 'Answer briefly.' });
  expect(prefs.body.pinned_models).toContain('gpt-4o-mini');
  await screenshot(page, 'account-settings-dark');

  // Back to the system theme: the attribute goes, the choice stays stored.
  await page.getByRole('radio', { name: 'System' }).check();
  await expect(page.locator('html')).not.toHaveAttribute('data-theme', /.+/);
  expect(await page.evaluate(() => localStorage.getItem('threadline.theme'))).toBe('system');
  expect(problems(errors)).toEqual([]);
});

test('API keys: a new key is shown once, works, and can be revoked', async ({ newAnonymousPage, server }) => {
  const page = await newAnonymousPage();
  await signUp(page, uniqueEmail('keys'));
  await page.goto('/settings/api-keys');
  await page.getByLabel('Key name').fill('ci script');
  await page.getByRole('button', { name: 'Create key' }).click();
  const dialog = page.getByRole('dialog');
  await expect(dialog).toBeVisible();
  await expect(dialog).toContainText('shown only this once');
  const secret = await dialog.getByLabel('Your new API key').inputValue();
  expect(secret).toMatch(/^tlk_/);
  await screenshot(page, 'account-api-key-once');

  // It acts as the account.
  const res = await fetch(`${server.url}/v1/me`, { headers: { authorization: `Bearer ${secret}` } });
  expect(res.status).toBe(200);

  await dialog.getByRole('button', { name: 'I have copied it' }).click();
  await expect(dialog).toBeHidden();
  const row = page.locator('table.api-keys tbody tr', { hasText: 'ci script' });
  await expect(row).toBeVisible();
  await expect(row).toContainText(secret.slice(0, 12));
  // Shown once: the secret is nowhere on the page any more, nor after a reload.
  expect(await page.content()).not.toContain(secret);
  await page.reload();
  await expect(row).toBeVisible();
  expect(await page.content()).not.toContain(secret);

  await row.getByRole('button', { name: /Revoke/ }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Revoke' }).click();
  await expect(page.locator('.empty-keys')).toBeVisible();
  const after = await fetch(`${server.url}/v1/me`, { headers: { authorization: `Bearer ${secret}` } });
  expect(after.status).toBe(401);
});

test('settings: usage meters, sessions, billing not configured, export and import', async ({ newAnonymousPage }) => {
  const page = await newAnonymousPage();
  const errors = watchErrors(page);
  await send(page, 'Something to export');
  await waitForReply(page);
  const threadId = new URL(page.url()).pathname.split('/').pop();
  await signUp(page, uniqueEmail('data'));

  await page.goto('/settings/usage');
  const credits = page.locator('.meter-card[data-meter=credits]');
  await expect(credits).toBeVisible();
  await expect(credits.locator('[role=meter]')).toHaveAttribute('aria-valuemax', '10');
  await expect(credits).toContainText('left');
  await expect(page.locator('.plan-tier')).toHaveText('Free');
  await page.getByRole('button', { name: 'Upgrade to Pro' }).click();
  await expect(page.locator('.billing-note')).toContainText(/not set up|not sold/);
  await expect(page.getByRole('button', { name: 'Upgrade to Pro' })).toBeDisabled();
  await screenshot(page, 'account-usage');

  await page.goto('/settings/sessions');
  const current = page.locator('.session-current');
  await expect(current).toContainText('This browser');
  await expect(current).toContainText('Chrom');

  await page.goto('/settings/data');
  await expect(page.locator('a.export-all')).toHaveAttribute('href', '/v1/me/export');
  await expect(page.locator('.thread-export-links a[data-format=markdown]')).toHaveAttribute('href', `/v1/threads/${threadId}/export?format=markdown`);
  const download = page.waitForEvent('download');
  await page.locator('a.export-all').click();
  expect((await download).suggestedFilename()).toMatch(/^threadline-export-.*\.zip$/);

  // Import this thread's own JSON export back: one new thread, then "already imported".
  const exported = await apiCall(page, 'GET', `/v1/threads/${threadId}/export?format=json`);
  expect(exported.status).toBe(200);
  const file = { name: 'thread.json', mimeType: 'application/json', buffer: Buffer.from(JSON.stringify(exported.body)) };
  await page.getByLabel('Exported from').selectOption('threadline');
  await page.getByLabel('Export file').setInputFiles(file);
  await page.getByRole('button', { name: 'Import', exact: true }).click();
  await expect(page.locator('.import-counts')).toContainText('1 imported');
  await expect(page.locator('.import-report tbody tr[data-status=imported] a')).toBeVisible();
  await screenshot(page, 'account-import');
  await page.getByLabel('Export file').setInputFiles(file);
  await page.getByRole('button', { name: 'Import', exact: true }).click();
  await expect(page.locator('.import-counts')).toContainText('1 already imported');

  // A file that is no export is refused on the field.
  await page.getByLabel('Export file').setInputFiles({ name: 'notes.json', mimeType: 'application/json', buffer: Buffer.from('{"hello":1}') });
  await page.getByRole('button', { name: 'Import', exact: true }).click();
  await expect(page.getByLabel('Export file')).toHaveAttribute('aria-invalid', 'true');

  // Share links of every thread, with revoke.
  const share = await apiCall(page, 'POST', `/v1/threads/${threadId}/shares`, {});
  expect(share.status).toBe(201);
  await page.getByRole('button', { name: 'Show my share links' }).click();
  const item = page.locator(`.share-item[data-share-id="${share.body.id}"]`);
  await expect(item).toContainText('Something to export');
  await item.getByRole('button', { name: /Revoke/ }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Revoke' }).click();
  await expect(item).toHaveCount(0);
  expect((await apiCall(page, 'GET', `/v1/shares/${share.body.id}`)).status).toBe(404);
  expect(problems(errors)).toEqual([]);
});

test('an admin changes a model’s credits and the chat’s model selector shows the new cost', async ({ adminPage, newAnonymousPage }) => {
  const page = adminPage;
  const errors = watchErrors(page);
  await page.goto('/admin');
  await expect(page.locator('.admin-tabs a[aria-current=page]')).toHaveText('Models');
  await expect(page.locator('table.admin-models tr[data-model="gpt-4o-mini"] .model-credits')).toHaveText('1');

  // Add a model through the console…
  await page.getByLabel('Model id').fill('e2e-priced');
  await page.getByRole('button', { name: 'Open or add' }).click();
  await expect(page).toHaveURL(/\/admin\/models\/e2e-priced$/);
  await expect(page.getByRole('heading', { name: 'New model “e2e-priced”' })).toBeVisible();
  await page.getByLabel('Provider', { exact: true }).fill('openai');
  await page.getByLabel('Upstream model').fill('mock:len=5');
  await page.getByLabel('Credits per message').fill('1');
  await page.getByLabel('Input', { exact: true }).fill('0.5');
  await page.getByRole('button', { name: 'Add model' }).click();
  await expect(page.getByRole('heading', { name: 'Model “e2e-priced”', exact: true })).toBeVisible();

  // …then change its credits.
  await page.getByLabel('Credits per message').fill('4');
  await page.getByRole('button', { name: 'Save', exact: true }).click();
  await expect(page.locator('.save-status')).toContainText('Saved');
  await screenshot(page, 'admin-model-edit');
  const entry = await apiCall(page, 'GET', '/v1/admin/models/e2e-priced');
  expect(entry.body).toMatchObject({ credits: 4, provider: 'openai', upstream: 'mock:len=5', access: 'public', enabled: true });
  expect(entry.body.prices.input).toBe(500000);

  await page.goto('/admin/models');
  await expect(page.locator('table.admin-models tr[data-model="e2e-priced"] .model-credits')).toHaveText('4');

  // A visitor's selector shows the new cost.
  const visitor = await newAnonymousPage();
  await visitor.locator('button[aria-label=Model]').click();
  const option = visitor.locator('[role=listbox] [role=option][data-model="e2e-priced"]');
  await expect(option).toContainText('4 credits');
  await screenshot(visitor, 'admin-model-selector-new-cost');
  // And the admin's own chat, after the change, too.
  await page.goto('/');
  await page.locator('button[aria-label=Model]').click();
  await expect(page.locator('[role=listbox] [role=option][data-model="e2e-priced"]')).toContainText('4 credits');
  expect(problems(errors)).toEqual([]);
});

test('the usage dashboard draws charts from real usage, with a table and a CSV download', async ({ adminPage }) => {
  const page = adminPage;
  const errors = watchErrors(page);
  await expect(composer(page)).toBeVisible();
  await send(page, 'Count this reply in the dashboard');
  await waitForReply(page);

  await page.goto('/admin/usage');
  await expect(page.locator('.admin-tabs a[aria-current=page]')).toHaveText('Usage');
  const replies = page.locator('.chart-messages-day svg[role=img]');
  await expect(replies).toBeVisible();
  await expect(replies).toHaveAttribute('aria-label', /Replies by day/);
  // A bar with a height for today, points on the lines, a bar per model.
  const bars = page.locator('.chart-messages-day rect.chart-bar');
  expect(await bars.count()).toBeGreaterThan(0);
  const tallest = await bars.evaluateAll((els) => Math.max(...els.map((e) => Number(e.getAttribute('height')))));
  expect(tallest).toBeGreaterThan(0);
  expect(await page.locator('.chart-credits-day circle.chart-point').count()).toBeGreaterThan(0);
  expect(await page.locator('.chart-tokens-day path.chart-path').count()).toBeGreaterThan(0);
  await expect(page.locator('.chart-messages-model rect.chart-bar')).not.toHaveCount(0);
  await expect(page.locator('.chart-messages-model svg')).toHaveAttribute('aria-label', /echo/);
  await expect(page.locator('.stat-messages .stat-value')).not.toHaveText('0');
  await expect(page.locator('table.usage-report tbody tr', { hasText: 'echo' })).toBeVisible();
  await screenshot(page, 'admin-usage-dashboard');

  // Group the table by account: the ids link to the ledger.
  await page.getByLabel('Table by').selectOption('account');
  await expect(page).toHaveURL(/group_by=account/);
  const accountLink = page.locator('table.usage-report tbody a').first();
  await expect(accountLink).toBeVisible();
  const csv = page.locator('a.csv-download');
  await expect(csv).toHaveAttribute('href', /format=csv/);
  const res = await apiCall(page, 'GET', await csv.getAttribute('href'));
  expect(res.status).toBe(200);
  expect(String(res.body).split('\r\n')[0]).toMatch(/^account,messages,/);

  // Phone width: the charts scale down and stay inside the page.
  await page.setViewportSize({ width: 375, height: 800 });
  await page.reload();
  await expect(page.locator('.chart-messages-day svg')).toBeVisible();
  const box = await page.locator('.chart-messages-day svg').boundingBox();
  expect(box.width).toBeLessThanOrEqual(375);
  await screenshot(page, 'admin-usage-phone');
  expect(problems(errors)).toEqual([]);
});

test('admin accounts: the ledger statement with running balances, and a grant', async ({ adminPage, newAnonymousPage }) => {
  const visitor = await newAnonymousPage();
  await visitor.locator('button[aria-label=Model]').click();
  await visitor.locator('[role=listbox] [role=option][data-model="gpt-4o-mini"]').click();
  await send(visitor, 'Spend a credit');
  await waitForReply(visitor);
  const account = (await apiCall(visitor, 'GET', '/v1/me')).body.id;

  const page = adminPage;
  await page.goto('/admin/accounts');
  await page.getByLabel('Account id').fill(account);
  await page.getByRole('button', { name: 'Look up' }).click();
  await expect(page).toHaveURL(new RegExp(`/admin/accounts/${account}$`));
  await expect(page.locator('table.statement tbody tr[data-kind=settled]')).toHaveCount(1);
  await expect(page.locator('table.statement tbody tr[data-kind=settled] .ledger-balance')).toHaveText('2');

  await page.getByLabel('Credits', { exact: true }).fill('25');
  await page.getByLabel('Reason').fill('e2e goodwill');
  await page.getByRole('button', { name: 'Grant credits' }).click();
  await expect(page.locator('.toast')).toContainText('Granted 25 credits');
  await expect(page.locator('.purchased-balance')).toHaveText('25');
  await expect(page.locator('table.statement tbody tr[data-kind=added]')).toContainText('e2e goodwill');
  await screenshot(page, 'admin-account-ledger');

  // The visitor sees the purchased credits on their usage page.
  await visitor.goto('/settings/usage');
  await expect(visitor.locator('.purchased-amount')).toHaveText('25');
});

test('admin MCP servers: register, list, tools of an unreachable server, remove', async ({ adminPage, server }) => {
  const page = adminPage;
  await page.goto('/admin/mcp');
  await page.getByLabel('Name', { exact: true }).fill('e2edocs');
  await page.getByLabel('URL', { exact: true }).fill(`${server.mockUrl}/not-mcp`);
  await page.getByLabel('Bearer secret').fill('tok_e2e');
  await page.getByRole('button', { name: 'Register' }).click();
  const row = page.locator('table.mcp-servers tr[data-server=e2edocs]');
  await expect(row).toContainText('set');
  await expect(row).toContainText('enabled');
  await row.getByRole('link', { name: 'Tools' }).click();
  await expect(page).toHaveURL(/\/admin\/mcp\/e2edocs$/);
  await expect(page.locator('.mcp-tools [role=alert]')).toContainText('could not be listed');
  await screenshot(page, 'admin-mcp');
  await page.locator('table.mcp-servers tr[data-server=e2edocs]').getByRole('button', { name: 'Remove e2edocs' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Remove' }).click();
  await expect(page.locator('table.mcp-servers tr[data-server=e2edocs]')).toHaveCount(0);
});

test('the audit trail lists an admin’s grant with the admin and the request, and filters by admin', async ({ adminPage, newAnonymousPage, server }) => {
  const visitor = await newAnonymousPage();
  const account = (await apiCall(visitor, 'GET', '/v1/me')).body.id;
  const page = adminPage;
  const grant = await apiCall(page, 'POST', `/v1/admin/accounts/${account}/credits`, { amount: 3, reason: 'audit e2e' });
  expect(grant.status).toBe(200);

  await page.goto('/admin/audit');
  await expect(page.getByRole('link', { name: 'Audit' })).toHaveAttribute('aria-current', 'page');
  const row = page.locator('table.audit tbody tr[data-event=CreditsAdded]', { hasText: 'audit e2e' });
  await expect(row).toHaveCount(1);
  await expect(row).toContainText(server.admin.email);
  await expect(row).toContainText('granted credits');
  await expect(row).toContainText('3 credits — audit e2e');
  await screenshot(page, 'admin-audit');
  // The target opens the account's ledger.
  await row.getByRole('link', { name: `account ${account}` }).click();
  await expect(page).toHaveURL(new RegExp(`/admin/accounts/${account}$`));

  // Another admin id shows nothing.
  await page.goto('/admin/audit');
  await page.getByLabel('Admin account').fill(account);
  await page.getByRole('button', { name: 'Show' }).click();
  await expect(page.locator('.empty-audit')).toContainText('No admin actions');
});

test('the admin console answers 403 to everyone else', async ({ newAnonymousPage }) => {
  const page = await newAnonymousPage();
  await page.goto('/admin/models');
  await expect(page.getByRole('heading', { name: 'Admins only' })).toBeVisible();
  await expect(page.locator('.admin-forbidden a[href="/login"]')).toBeVisible();
  await screenshot(page, 'admin-forbidden');
});

test('Settings → Data: a person deletes their account with their password', async ({ newAnonymousPage }) => {
  const page = await newAnonymousPage();
  const errors = watchErrors(page);
  const email = uniqueEmail('erase');
  await signUp(page, email);
  const before = (await apiCall(page, 'GET', '/v1/me')).body;
  await page.goto('/settings/data');
  const form = page.locator('.erase-form');
  await form.getByLabel('Password').fill('not the password');
  await form.getByRole('button', { name: 'Delete my account' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Delete for good' }).click();
  await expect(form.getByLabel('Password')).toHaveAttribute('aria-invalid', 'true');
  expect((await apiCall(page, 'GET', '/v1/me')).body.id).toBe(before.id);
  await screenshot(page, 'account-erase');

  await form.getByLabel('Password').fill(PASSWORD);
  await form.getByRole('button', { name: 'Delete my account' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Delete for good' }).click();
  await page.waitForURL((url) => url.pathname === '/');
  // The old account is gone: its email logs in no more, and this browser starts afresh.
  const login = await apiCall(page, 'POST', '/v1/auth/login', { email, password: PASSWORD });
  expect(login.status).toBe(401);
  await expect.poll(async () => (await apiCall(page, 'GET', '/v1/me')).body?.id).not.toBe(before.id);
  expect(problems(errors)).toEqual([]);
});
