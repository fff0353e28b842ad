// Chat journeys of the web app: the first message and its streamed reply, reloading in the
// middle of a reply (resume, nothing doubled), stop, regenerate and the version switcher, edit,
// attachments (an image and a PDF), search, tool calls / reasoning / research as they stream,
// the model selector's locks, and the sidebar's live updates and thread menu.
// Each journey saves a screenshot (tests/e2e/screenshots/chat-*.png).
//
// Models: `echo` (the default here; echoes the words, E2E_ECHO_DELAY_MS apart) and catalog
// entries this file adds through the admin API, answered by the mock upstream
// (src/mock_upstream.rs: word i is `w{i}`; `len`, `tps`, `reasoning`, `script` knobs).
import {
  test, expect, screenshot, send, waitForReply, lastMessage, composer, apiCall, watchErrors,
} from './harness.mjs';

const SLOW_WORDS = 300;

/** Adds (or replaces) a catalog model answered by the mock upstream. */
async function defineModel(server, id, upstream, capabilities = [], credits = 0) {
  const res = await fetch(`${server.url}/v1/admin/models/${id}`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${server.admin.token}` },
    body: JSON.stringify({
      provider: 'openai', upstream, capabilities, access: 'public', credits,
      prices: { input: 0, output: 0, cached_input: 0, reasoning: 0 }, enabled: true,
    }),
  });
  if (res.status !== 200) throw new Error(`defining ${id}: ${res.status} ${await res.text()}`);
}

test.beforeAll(async ({ server }) => {
  // A reply of SLOW_WORDS words at 25 a second (~12 s): long enough to reload or stop in the middle.
  await defineModel(server, 'e2e-slow', `mock:len=${SLOW_WORDS},tps=25`);
  // Takes images and PDFs, answers at once.
  await defineModel(server, 'e2e-vision', 'mock:len=6', ['vision', 'documents']);
  // Thinks, calls web_search, then answers with the result (src/mock_upstream/tools.rs).
  const script = Buffer.from(JSON.stringify([
    { call: { name: 'web_search', arguments: { query: 'threadline' } } },
    { text: 'found {result}' },
  ])).toString('base64url');
  await defineModel(server, 'e2e-tools', `mock:len=12,tps=30,reasoning=6,script=${script}`, ['tools', 'reasoning']);
});

async function chooseModel(page, id) {
  await page.locator('button[aria-label=Model]').click();
  const option = page.locator(`[role=listbox] [role=option][data-model="${id}"]`);
  await expect(option).toBeVisible();
  await option.click();
  await expect(page.locator('button[aria-label=Model]')).toContainText(id);
}

// Console errors that are not a failure: the 401 of the first `GET /v1/me` before the app
// starts its anonymous session.
const realErrors = (errors) => errors.filter((e) => !/Failed to load resource: the server responded with a status of 401/.test(e));

const words = (n) => Array.from({ length: n }, (_, i) => `w${i}`).join(' ');
const normal = (s) => s.replace(/\s+/g, ' ').trim();
const assistantText = (msg) => msg.locator('.markdown').first().innerText().then(normal);

test('anonymous first message: the reply streams in, the thread gets its address and a sidebar row', async ({ newAnonymousPage }) => {
  const page = await newAnonymousPage();
  const errors = watchErrors(page);
  await expect(page.locator('.greeting')).toBeVisible();
  await expect(page.locator('.suggestion').first()).toBeVisible();
  await expect(page.locator('[data-testid=usage]')).toContainText('credits left today');

  const question = 'Hello Threadline, please say these words back to me slowly one after another';
  // The echo reply may finish before a poll sees it streaming: record what the page showed.
  await page.evaluate(() => {
    window.sawStreaming = { stop: false, message: false };
    new MutationObserver(() => {
      const stop = document.querySelector('button[aria-label=Stop]');
      if (stop && !stop.hidden) window.sawStreaming.stop = true;
      if (document.querySelector('article.message[data-role=assistant].is-streaming')) window.sawStreaming.message = true;
    }).observe(document.body, { subtree: true, childList: true, attributes: true });
  });
  await send(page, question);
  // The address is the thread's at once, and the reply streams (Stop shows while it does).
  await expect(page).toHaveURL(/\/t\/[A-Za-z0-9_-]{1,64}$/);
  await expect(lastMessage(page, 'user')).toContainText(question);
  const reply = await waitForReply(page);
  expect(await page.evaluate(() => window.sawStreaming)).toEqual({ stop: true, message: true });
  expect(await assistantText(reply)).toBe(normal(`Echo: ${question}`));
  await expect(reply).toHaveAttribute('data-status', 'completed');
  await expect(reply).toHaveAttribute('data-message-id', /.+/);
  await expect(composer(page)).toHaveValue('');

  const id = new URL(page.url()).pathname.split('/').pop();
  const row = page.locator(`#sidebar a.thread-link[href="/t/${id}"]`);
  await expect(row).toBeVisible();
  await expect(row).toHaveAttribute('aria-current', 'page');
  await expect(row.locator('.streaming-dot')).toHaveCount(0);
  await expect(page.locator('#sidebar .sidebar-account')).toContainText('Anonymous');
  await expect(page.locator('#sidebar a[href="/signup"]')).toBeVisible();
  await expect(page.locator('#sidebar .conn-dot')).toHaveAttribute('data-status', 'online');
  await screenshot(page, 'chat-first-message');

  // The thread reads back the same after a reload.
  await page.reload();
  expect(await assistantText(lastMessage(page, 'assistant'))).toBe(normal(`Echo: ${question}`));
  expect(realErrors(errors)).toEqual([]);
});

test('the model selector groups models with capabilities and costs, and locks what needs an account', async ({ newAnonymousPage }) => {
  const page = await newAnonymousPage();
  await page.locator('button[aria-label=Model]').click();
  const list = page.getByRole('listbox');
  await expect(list).toBeVisible();
  await expect(list.getByRole('group').first()).toBeVisible();
  const mini = list.locator('[role=option][data-model="gpt-4o-mini"]');
  await expect(mini).toContainText('1 credit');
  await expect(mini).toContainText('Vision');
  await expect(mini).not.toHaveAttribute('aria-disabled', 'true');
  const locked = list.locator('[role=option][data-model="gpt-4o"]');
  await expect(locked).toHaveAttribute('aria-disabled', 'true');
  await expect(locked).toContainText('2 credits');
  await locked.click({ force: true }); // aria-disabled, yet a click says what would unlock it
  const prompt = page.locator('.model-upgrade');
  await expect(prompt).toContainText('gpt-4o');
  await expect(prompt.locator('a[href="/signup"]')).toBeVisible();
  await screenshot(page, 'chat-model-selector');
  // Keyboard: the list takes arrows and Enter; Escape closes it.
  await page.keyboard.press('Escape');
  await expect(list).toBeHidden();
  await expect(page.locator('button[aria-label=Model]')).toContainText('echo');
});

test('reload in the middle of a reply: the whole reply shows, nothing doubled, and it continues live', async ({ newAnonymousPage }) => {
  const page = await newAnonymousPage();
  await chooseModel(page, 'e2e-slow');
  await send(page, 'Count for me');
  const reply = lastMessage(page, 'assistant');
  await expect(reply).toContainText('w8 ');
  await page.reload();

  // Resumed: still streaming after the reload (Stop shows), then complete.
  const resumed = lastMessage(page, 'assistant');
  await expect(page.locator('button[aria-label=Stop]')).toBeVisible();
  await expect(resumed).toHaveClass(/is-streaming/);
  await screenshot(page, 'chat-resume-mid-reply');
  await waitForReply(page);
  await expect(resumed).toHaveAttribute('data-status', 'completed');
  expect(await assistantText(resumed)).toBe(words(SLOW_WORDS));
  await expect(page.locator('article.message[data-role=assistant]')).toHaveCount(1);
  await expect(page.locator('article.message[data-role=user]')).toHaveCount(1);
  await screenshot(page, 'chat-resume-after-reload');
});

test('stop keeps the partial reply', async ({ newAnonymousPage }) => {
  const page = await newAnonymousPage();
  await chooseModel(page, 'e2e-slow');
  await send(page, 'Count, and I will stop you');
  const reply = lastMessage(page, 'assistant');
  await expect(reply).toContainText('w5 ');
  await page.locator('button[aria-label=Stop]').click();
  await expect(reply).toHaveAttribute('data-status', 'stopped');
  await expect(page.locator('button[aria-label=Send]')).toBeVisible();
  await expect(reply.locator('.message-footer')).toContainText('Stopped');
  const partial = await assistantText(reply);
  expect(partial.startsWith('w0 w1 w2 w3 w4 w5')).toBe(true);
  expect(partial).not.toContain(`w${SLOW_WORDS - 1}`);
  await screenshot(page, 'chat-stop');

  // The partial reply is what the thread keeps.
  await page.reload();
  const kept = lastMessage(page, 'assistant');
  await expect(kept).toHaveAttribute('data-status', 'stopped');
  expect(await assistantText(kept)).toBe(partial);
});

test('regenerate, edit and switch versions with ‹ 2/3 ›', async ({ newAnonymousPage }) => {
  const page = await newAnonymousPage();
  await send(page, 'Tell me a version');
  const first = await waitForReply(page);
  const firstId = await first.getAttribute('data-message-id');

  await first.hover();
  await first.locator('button[aria-label=Regenerate]').click();
  const second = await waitForReply(page);
  await expect(page.locator('article.message[data-role=assistant]')).toHaveCount(1);
  await expect(second.locator('.switcher-count')).toHaveText('2/2');
  const secondId = await second.getAttribute('data-message-id');
  expect(secondId).not.toBe(firstId);

  await second.locator('button[aria-label=Regenerate]').click();
  const third = await waitForReply(page);
  await expect(third.locator('.switcher-count')).toHaveText('3/3');

  await third.locator('button[aria-label="Previous version"]').click();
  await expect(lastMessage(page, 'assistant').locator('.switcher-count')).toHaveText('2/3');
  await expect(lastMessage(page, 'assistant')).toHaveAttribute('data-message-id', secondId);
  await lastMessage(page, 'assistant').locator('button[aria-label="Previous version"]').click();
  await expect(lastMessage(page, 'assistant').locator('.switcher-count')).toHaveText('1/3');
  await expect(lastMessage(page, 'assistant')).toHaveAttribute('data-message-id', firstId);
  await expect(lastMessage(page, 'assistant').locator('button[aria-label="Previous version"]')).toBeDisabled();
  await screenshot(page, 'chat-versions');

  // The chosen branch is the thread's, for every device: a reload shows it.
  await page.reload();
  await expect(lastMessage(page, 'assistant').locator('.switcher-count')).toHaveText('1/3');
  await expect(lastMessage(page, 'assistant')).toHaveAttribute('data-message-id', firstId);

  // Edit the question: a new version of the user message, answered anew.
  const user = lastMessage(page, 'user');
  await user.hover();
  await user.locator('button[aria-label="Edit message"]').click();
  await page.locator('textarea[aria-label="Edit message"]').fill('Tell me another version');
  await page.getByRole('button', { name: 'Save & send' }).click();
  const edited = await waitForReply(page);
  await expect(edited).toContainText('Echo: Tell me another version');
  await expect(lastMessage(page, 'user').locator('.switcher-count')).toHaveText('2/2');
  await lastMessage(page, 'user').locator('button[aria-label="Previous version"]').click();
  await expect(lastMessage(page, 'user')).toContainText('Tell me a version');
  await expect(lastMessage(page, 'user').locator('.switcher-count')).toHaveText('1/2');
  // The path through a message ends at its newest reply.
  await expect(lastMessage(page, 'assistant').locator('.switcher-count')).toHaveText('3/3');
  await screenshot(page, 'chat-edit-versions');

  // Branch into a new thread from the reply: a new address holding the path up to it.
  const source = page.url();
  await lastMessage(page, 'assistant').locator('button[aria-label="Branch into new thread"]').click();
  await expect(page).not.toHaveURL(source);
  await expect(page).toHaveURL(/\/t\/[A-Za-z0-9_-]+$/);
  await expect(lastMessage(page, 'user')).toContainText('Tell me a version');
  await expect(page.locator('article.message')).toHaveCount(2);
  await expect(page.locator(`#sidebar a.thread-link[href="${new URL(page.url()).pathname}"]`)).toHaveAttribute('aria-current', 'page');
});

// A 1×1 PNG and a minimal one-page PDF.
const PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==', 'base64');
const PDF = Buffer.from([
  '%PDF-1.4',
  '1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj',
  '2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj',
  '3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 200 200]/Contents 4 0 R/Resources<<>>>>endobj',
  '4 0 obj<</Length 44>>stream',
  'BT /F1 12 Tf 20 100 Td (Hello PDF) Tj ET',
  'endstream endobj',
  'trailer<</Root 1 0 R>>',
  '%%EOF', ''].join('\n'));

test('attach an image and a PDF: previews before sending, previews in the message', async ({ newAnonymousPage }) => {
  const page = await newAnonymousPage();
  const errors = watchErrors(page);
  await chooseModel(page, 'e2e-vision');
  const chooser = page.waitForEvent('filechooser');
  await page.locator('button[aria-label="Attach files"]').click();
  await (await chooser).setFiles([
    { name: 'dot.png', mimeType: 'image/png', buffer: PNG },
    { name: 'notes.pdf', mimeType: 'application/pdf', buffer: PDF },
  ]);
  const tray = page.locator('.composer .attachments');
  await expect(tray.locator('.attachment[data-status=ready]')).toHaveCount(2);
  await expect(tray.locator('img.attachment-thumb')).toHaveCount(1);
  await expect(tray).toContainText('notes.pdf');
  await expect(tray.locator('button[aria-label="Remove notes.pdf"]')).toBeVisible();
  await screenshot(page, 'chat-attachments-before-send');

  await send(page, 'What do these files hold?');
  const reply = await waitForReply(page);
  await expect(reply).toContainText('w0');
  await expect(tray.locator('.attachment')).toHaveCount(0);
  const user = lastMessage(page, 'user');
  const img = user.locator('.message-files img');
  await expect(img).toHaveAttribute('src', /^\/v1\/files\/[^/]+\/content$/);
  await expect.poll(() => img.evaluate((el) => el.complete && el.naturalWidth)).toBe(1);
  const chip = user.locator('.message-files a.file-chip');
  await expect(chip).toContainText('notes.pdf');
  await expect(chip).toHaveAttribute('href', /^\/v1\/files\/[^/]+\/content$/);
  await expect(chip.locator('.file-size')).toContainText('B');
  await screenshot(page, 'chat-attachments');

  // The files are part of the thread.
  await page.reload();
  await expect(lastMessage(page, 'user').locator('.message-files img')).toHaveCount(1);
  await expect(lastMessage(page, 'user').locator('.message-files a.file-chip')).toContainText('notes.pdf');

  // A file dropped on the chat is attached too; echo cannot see images, and the composer says so.
  await page.locator('a.new-chat').click();
  await expect(composer(page)).toBeVisible();
  await chooseModel(page, 'echo');
  await page.locator('.chat-scroll').evaluate((target, bytes) => {
    const dt = new DataTransfer();
    dt.items.add(new File([new Uint8Array(bytes)], 'dropped.png', { type: 'image/png' }));
    for (const type of ['dragenter', 'dragover', 'drop']) target.dispatchEvent(new DragEvent(type, { bubbles: true, cancelable: true, dataTransfer: dt }));
  }, [...PNG]);
  await expect(page.locator('.composer .attachment[data-status=ready]')).toContainText('dropped.png');
  await composer(page).fill('Look at this');
  await expect(page.locator('.composer-notice')).toContainText('cannot see images');
  await expect(page.locator('button[aria-label=Send]')).toBeDisabled();
  expect(realErrors(errors)).toEqual([]);
});

test('search finds an earlier thread and highlights the match', async ({ newAnonymousPage }) => {
  const page = await newAnonymousPage();
  await send(page, 'Where do flamingos sleep at night?');
  await waitForReply(page);
  const earlier = new URL(page.url()).pathname;
  await page.locator('a.new-chat').click();
  await expect(page).toHaveURL(/\/$/);
  await send(page, 'Something else entirely');
  await waitForReply(page);

  const search = page.locator('input[aria-label="Search threads"]');
  await search.fill('flamin');
  const hit = page.locator('.search-results a.search-hit').first();
  await expect(hit).toBeVisible();
  await expect(hit.locator('mark').first()).toHaveText(/^flamingo/i);
  await screenshot(page, 'chat-search');
  await hit.click();
  await expect(page).toHaveURL(new RegExp(`${earlier}(\\?.*)?$`));
  await expect(lastMessage(page, 'user')).toContainText('flamingos');
  // Escape clears the search and brings the thread list back.
  await search.fill('zzzznothing');
  await expect(page.locator('.search-results')).toContainText('No chats match');
  await search.press('Escape');
  await expect(page.locator('#sidebar a.thread-link')).toHaveCount(2);
});

test('reasoning, tool calls and research progress show as they stream', async ({ newAnonymousPage }) => {
  const page = await newAnonymousPage();
  await chooseModel(page, 'e2e-tools');
  await send(page, 'Look it up');
  const reply = lastMessage(page, 'assistant');
  await expect(reply.locator('details.reasoning').first()).toBeVisible();
  const tool = reply.locator('.tool-call');
  await expect(tool).toBeVisible();
  await expect(tool).toContainText('web_search');
  await waitForReply(page);
  await expect(tool).toHaveAttribute('data-state', 'output-available');
  await expect(reply.locator('details.reasoning').first()).not.toHaveAttribute('open', '');
  await tool.locator('summary').click();
  await expect(tool.locator('.tool-body')).toContainText('threadline');
  await expect(reply.locator('.markdown').last()).toContainText('found');
  await screenshot(page, 'chat-tools');

  // Research: the toggle shows for a model with tools; the steps stream in.
  await page.locator('a.new-chat').click();
  await chooseModel(page, 'e2e-tools');
  const research = page.locator('.tool-toggle', { hasText: 'Research' });
  await research.click();
  await expect(research).toHaveAttribute('aria-pressed', 'true');
  await send(page, 'How do crabs molt?');
  const box = lastMessage(page, 'assistant').locator('details.research');
  await expect(box).toBeVisible();
  await waitForReply(page);
  await expect(box).toHaveAttribute('data-done', 'true');
  await expect(box.locator('summary')).toContainText(/source/);
  await box.locator('summary').click();
  await expect(box.locator('.research-step').first()).toContainText('Searched');
  await screenshot(page, 'chat-research');
});

test('sidebar: live updates from another tab, pin, rename, archive, delete', async ({ newAnonymousPage }) => {
  const page = await newAnonymousPage();
  const other = await page.context().newPage(); // a second tab of the same browser
  await other.goto('/');
  await expect(composer(other)).toBeVisible();

  await send(page, 'Plans for the weekend');
  await waitForReply(page);
  const id = new URL(page.url()).pathname.split('/').pop();
  // The other tab's sidebar shows the new thread without a reload.
  const otherRow = other.locator(`#sidebar li.thread-row:has(a[href="/t/${id}"])`);
  await expect(otherRow).toBeVisible();

  const row = page.locator(`#sidebar li.thread-row:has(a[href="/t/${id}"])`);
  await row.hover();
  await row.locator('button.thread-menu-button').click();
  await page.getByRole('menuitem', { name: 'Pin' }).click();
  await expect(page.locator('#sidebar [aria-label="Pinned threads"]')).toContainText('Plans for the weekend');
  await expect(other.locator('#sidebar [aria-label="Pinned threads"]')).toContainText('Plans for the weekend');

  await row.locator('button.thread-menu-button').click();
  await page.getByRole('menuitem', { name: 'Rename' }).click();
  await page.locator('dialog input[aria-label=Title]').fill('Weekend');
  await page.locator('dialog').getByRole('button', { name: 'Save' }).click();
  await expect(page.locator('.chat-title')).toHaveText('Weekend');
  await expect(otherRow).toContainText('Weekend');
  await screenshot(page, 'chat-sidebar');

  await row.locator('button.thread-menu-button').click();
  await page.getByRole('menuitem', { name: 'Archive' }).click();
  await expect(page.locator('#sidebar [aria-label="Pinned threads"]')).toBeHidden();
  await page.locator('#sidebar button.archived-toggle').click();
  await expect(page.locator('#archived-threads')).toContainText('Weekend');

  // The other tab is on the thread when it is deleted here.
  await other.goto(`/t/${id}`);
  await expect(lastMessage(other, 'assistant')).toBeVisible();
  await page.locator(`#archived-threads li.thread-row:has(a[href="/t/${id}"]) button.thread-menu-button`).click();
  await page.getByRole('menuitem', { name: 'Delete' }).click();
  await page.locator('dialog').getByRole('button', { name: 'Delete' }).click();
  await expect(page).toHaveURL(/\/$/);
  await expect(other.locator('.chat-state')).toContainText('deleted');
  await expect(other.locator(`#sidebar a[href="/t/${id}"]`)).toHaveCount(0);
});

test('a long thread loads earlier messages when scrolling up and keeps the place', async ({ newAnonymousPage }) => {
  const page = await newAnonymousPage();
  // 35 exchanges through the API: 70 messages, more than the first page of 50.
  const id = `long${Date.now()}`;
  for (let i = 0; i < 35; i++) {
    const res = await apiCall(page, 'POST', '/v1/chat', { id, message: `message number ${i}`, model: 'echo' });
    expect(res.status).toBe(200);
  }
  await page.goto(`/t/${id}`);
  await expect(page.locator('article.message')).toHaveCount(50);
  const firstShown = page.locator('article.message').first();
  const firstId = await firstShown.getAttribute('data-message-id');
  await page.locator('.chat-scroll').evaluate((el) => { el.scrollTop = 0; });
  await expect(page.locator('article.message')).toHaveCount(70);
  await expect(page.locator('article.message').first()).toContainText('message number 0');
  // The message that was on top is still in view (the older page went above it).
  await expect(page.locator(`article.message[data-message-id="${firstId}"]`)).toBeInViewport();
  await screenshot(page, 'chat-long-thread');
});
