// The chat view: `/` (a new chat) and `/t/{id}` (a thread).
//
// - Shows the current path of the thread a page at a time (`GET /v1/threads/{id}/messages`,
//   older pages when scrolling up, keeping the scroll position) and the thread's state
//   (`GET /v1/threads/{id}`).
// - Sends with `POST /v1/chat` (short form `{id, message:{id, role, parts}, model, tool?, tools?}`)
//   and reads the UI message stream from the answer (stream.js). A new chat picks its id here
//   and the address becomes `/t/{id}` at once (replaceState, so nothing remounts).
// - Resumes a reply that is streaming when the thread opens (or starts on another device):
//   `GET /v1/chat/{id}/stream` replays it from its start, so the reply is drawn from scratch.
// - Regenerate (`trigger: "regenerate-message"`), edit (a known message id with new text),
//   the version switcher (`PUT /v1/threads/{id}/current`), branch, copy, share, stop.
// - Attachments by picker, paste and drop; usage; typing signals; errors with what was typed kept.
//
// Emits ctx 'route' when a new chat becomes a thread. Listens to ctx 'chat:new' (the sidebar's
// "New chat" while already on `/`) to focus the composer.

import { ApiError, get, post, put, request } from '../lib/api.js';
import { h, replace, toast } from '../lib/dom.js';
import { onFeed } from '../lib/feed.js';
import { createComposer } from './composer.js';
import { describeError } from './errors.js';
import { createMessageView } from './message.js';
import { loadPrefs } from './models.js';
import { openShareDialog } from './share-dialog.js';
import { applyPart, emptyAssistant, messageText, readUIStream } from './stream.js';
import { copyText, icon } from './ui.js';
import { createUsageIndicator } from './usage.js';

const PAGE = 50;
const SUGGESTIONS = [
  'Explain event sourcing like I am new to it',
  'Write a short poem about the sea at night',
  'Plan a relaxed three-day trip to Lisbon',
  'How do I read a file line by line in Rust?',
];

let sessionModel = null; // the model chosen in the selector, for the rest of the session
let searchUnavailable = false; // the server said it has no search API

/** A client-chosen id: 32 hex characters. */
const newId = () => crypto.randomUUID().replaceAll('-', '');

export function mount(root, params, ctx) {
  let threadId = params.id || null;
  let thread = null; // GET /v1/threads/{id} without messages
  let exists = !!threadId;
  let messages = []; // the loaded part of the current path, oldest first
  const views = new Map(); // message id -> view
  let olderCursor = null;
  let loadingOlder = false;
  let live = null; // {controller, msg, view, stopTimer}
  let busy = false; // a send is being made
  let destroyed = false;
  let loaded = false; // the thread was read once (or was created here)
  let stick = true;
  let typingTimer = null;
  let lastTypingSent = 0;
  const cleanups = [];

  // ---- layout ----
  const title = h('h1', { class: 'chat-title' }, threadId ? '' : 'New chat');
  const shareButton = h('button', { type: 'button', class: 'btn btn-ghost chat-share', 'aria-label': 'Share', hidden: !threadId, onclick: () => openShareDialog(threadId, { lastMessageId: messages[messages.length - 1]?.id }) }, icon('share', 16), h('span', { class: 'label' }, 'Share'));
  const header = h('header', { class: 'chat-header' }, title, h('div', { class: 'chat-header-actions' }, shareButton));
  const older = h('div', { class: 'load-older', hidden: true }, h('span', { class: 'spinner', 'aria-hidden': 'true' }), ' Loading earlier messages…');
  const list = h('div', { class: 'messages', role: 'log', 'aria-label': 'Messages', 'aria-live': 'off' });
  const greeting = h('div', { class: 'greeting', hidden: !!threadId });
  const stateBox = h('div', { class: 'chat-state', hidden: true });
  const anchor = h('div', { class: 'scroll-anchor', 'aria-hidden': 'true' });
  const column = h('div', { class: 'chat-column' }, older, greeting, stateBox, list, anchor);
  const scroller = h('div', { class: 'chat-scroll' }, column);
  const jump = h('button', { type: 'button', class: 'btn jump-latest', 'aria-label': 'Scroll to latest', hidden: true, onclick: () => { stick = true; toBottom(true); } }, icon('chevronDown', 16));
  const usage = createUsageIndicator(ctx);
  const composer = createComposer({
    ctx,
    onSend: (m) => send(m),
    onStop: () => stop(),
    onTyping: () => typingSignal(),
    onModel: (id) => { sessionModel = id; },
    onTool: (t) => checkTool(t),
    toolsUnavailable: () => searchUnavailable,
  });
  const bottom = h('div', { class: 'chat-bottom' }, jump, composer.el, h('div', { class: 'chat-under' }, usage.el));
  const dropOverlay = h('div', { class: 'drop-overlay', hidden: true, 'aria-hidden': 'true' }, h('div', null, icon('clip', 28), h('p', null, 'Drop files to attach them')));
  const section = h('section', { class: 'chat', 'aria-label': 'Chat' }, header, scroller, bottom, dropOverlay);
  replace(root, section);

  // ---- scrolling ----
  const atBottom = () => scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 48;
  function toBottom(smooth = false) {
    scroller.scrollTo({ top: scroller.scrollHeight, behavior: smooth ? 'smooth' : 'auto' });
  }
  scroller.addEventListener('scroll', () => {
    stick = atBottom();
    jump.hidden = stick || messages.length === 0;
    if (scroller.scrollTop < 400) loadOlder();
  }, { passive: true });
  const ro = new ResizeObserver(() => { if (stick) toBottom(); });
  ro.observe(column);
  cleanups.push(() => ro.disconnect());

  // ---- drawing ----
  function opts(m, i) {
    const lastIndex = messages.length - 1;
    return { isLast: i === lastIndex, streaming: live?.msg === m, busy: busy || !!live };
  }

  function viewFor(m) {
    return createMessageView(m, {
      onCopy: (msg) => copyText(messageText(msg), 'Message copied'),
      onEdit: (msg, text) => edit(msg, text),
      onRegenerate: (msg) => regenerate(msg),
      onBranch: (msg) => branch(msg),
      onSwitch: (msg, delta) => switchVersion(msg, delta),
    });
  }

  const signature = (m) => JSON.stringify([m.parts, m.metadata], (k, v) => (k === '_v' || k === '_id' ? undefined : v));

  /** Makes the DOM follow `messages` (keyed by id); reuses views whose message did not change. */
  function draw() {
    const keep = new Set();
    let prev = null;
    messages.forEach((m, i) => {
      const key = m.id || m._key;
      keep.add(key);
      let v = views.get(key);
      if (!v) {
        v = viewFor(m);
        views.set(key, v);
        v.update(m, opts(m, i), true);
      } else if (v.msg !== m) {
        if (v.msg._sig && m._sig === undefined) m._sig = signature(m);
        if (v.msg._sig !== undefined && v.msg._sig === m._sig) { messages[i] = v.msg; v.update(v.msg, opts(v.msg, i)); }
        else v.update(m, opts(m, i), true);
      } else {
        v.update(m, opts(m, i));
      }
      if (prev ? prev.nextElementSibling !== v.el : list.firstElementChild !== v.el) {
        if (prev) prev.after(v.el); else list.prepend(v.el);
      }
      prev = v.el;
    });
    for (const [key, v] of views) {
      if (!keep.has(key)) { v.el.remove(); views.delete(key); }
    }
    greeting.hidden = messages.length > 0 || !!threadId;
    shareButton.hidden = !exists || messages.length === 0;
    if (stick) toBottom();
  }

  function setMessages(list, cursor) {
    for (const m of list) m._sig = signature(m);
    messages = list;
    olderCursor = cursor;
    draw();
  }

  let raf = 0;
  function drawSoon() {
    if (raf) return;
    raf = requestAnimationFrame(() => { raf = 0; if (!destroyed) draw(); });
  }

  function showState(node) {
    stateBox.replaceChildren(node);
    stateBox.hidden = false;
  }

  function paintTitle() {
    const t = thread?.title || 'New chat';
    title.textContent = t;
    document.title = `${t} · Threadline`;
  }

  function paintGreeting() {
    loadPrefs().then((p) => {
      const name = p?.nickname || ctx.me?.name;
      replace(greeting,
        h('h2', { class: 'greeting-title' }, name ? `How can I help you, ${name}?` : 'How can I help you today?'),
        h('div', { class: 'suggestions' }, SUGGESTIONS.map((s) => h('button', {
          type: 'button', class: 'suggestion', onclick: () => { composer.setText(s); composer.focus(); },
        }, s))));
    });
  }

  // ---- loading ----
  async function load() {
    try {
      const [t, page] = await Promise.all([
        get(`/v1/threads/${threadId}`),
        get(`/v1/threads/${threadId}/messages`, { limit: PAGE }),
      ]);
      if (destroyed) return;
      const { messages: _all, ...meta } = t;
      thread = meta;
      exists = true;
      loaded = true;
      paintTitle();
      setMessages(page.data, page.next_cursor);
      pickModel();
      stick = true;
      toBottom();
      focusMessageFromQuery();
      const last = page.data[page.data.length - 1];
      if (thread.active_generation_id || last?.metadata?.status === 'streaming') resume();
    } catch (e) {
      if (destroyed) return;
      if (e.status === 404) {
        title.textContent = 'Not found';
        composer.el.hidden = true;
        showState(h('div', { class: 'empty-state' },
          h('h2', null, 'This chat does not exist'),
          h('p', { class: 'muted' }, 'It may have been deleted, or it belongs to another account.'),
          h('a', { class: 'btn btn-primary', href: '/' }, 'Start a new chat')));
      } else {
        showState(h('div', { class: 'empty-state', role: 'alert' }, h('p', null, e.message || 'Could not load the chat.'),
          h('button', { type: 'button', class: 'btn', onclick: () => { stateBox.hidden = true; load(); } }, 'Try again')));
      }
    }
  }

  /** Reloads the newest page (coalescing overlapping calls). */
  let refreshing = null;
  let refreshAgain = false;
  function refresh() {
    if (refreshing) { refreshAgain = true; return refreshing; }
    refreshing = refreshNow().finally(() => {
      refreshing = null;
      if (refreshAgain) { refreshAgain = false; refresh(); }
    });
    return refreshing;
  }

  /** Reloads the newest page and merges it with the older messages already shown. */
  async function refreshNow() {
    if (!exists || destroyed) return;
    try {
      const [page, t] = await Promise.all([
        get(`/v1/threads/${threadId}/messages`, { limit: PAGE }),
        get(`/v1/threads/${threadId}`).catch(() => null),
      ]);
      if (destroyed || busy) return;
      // A title never goes back to null: a read that raced the feed's thread.titled keeps it.
      if (t) { const { messages: _m, ...meta } = t; thread = { ...meta, title: meta.title ?? thread?.title ?? null }; paintTitle(); }
      for (const m of page.data) m._sig = signature(m);
      const first = page.data[0];
      const at = first ? messages.findIndex((m) => m.id === first.id) : -1;
      let next = page.data;
      if (page.next_cursor && at > 0) next = messages.slice(0, at).concat(page.data);
      else olderCursor = page.next_cursor;
      // A reply being followed stays the object the stream fills.
      if (live?.msg) {
        const j = live.msg.id ? next.findIndex((m) => m.id === live.msg.id) : -1;
        if (j >= 0) next[j] = live.msg;
        else if (messages.includes(live.msg)) next.push(live.msg);
      }
      messages = next;
      draw();
      if (!live && (t?.active_generation_id || page.data[page.data.length - 1]?.metadata?.status === 'streaming')) resume();
    } catch (e) {
      if (e.status === 404 && loaded) deleted();
    }
  }

  async function loadOlder() {
    if (!olderCursor || loadingOlder || !exists) return;
    loadingOlder = true;
    older.hidden = false;
    try {
      const page = await get(`/v1/threads/${threadId}/messages`, { limit: PAGE, before: olderCursor });
      if (destroyed) return;
      const ids = new Set(messages.map((m) => m.id));
      const add = page.data.filter((m) => !ids.has(m.id));
      for (const m of add) m._sig = signature(m);
      const beforeHeight = scroller.scrollHeight;
      const beforeTop = scroller.scrollTop;
      messages = add.concat(messages);
      olderCursor = page.next_cursor;
      const wasStick = stick;
      stick = false;
      draw();
      older.hidden = true;
      scroller.scrollTop = beforeTop + (scroller.scrollHeight - beforeHeight);
      stick = wasStick && atBottom();
    } catch (e) {
      if (e.status === 400) olderCursor = null; // the cursor names a message hidden since
    } finally {
      loadingOlder = false;
      older.hidden = true;
    }
  }

  function focusMessageFromQuery() {
    const id = new URLSearchParams(location.search).get('m');
    if (!id) return;
    const v = views.get(id);
    if (!v) return;
    stick = false;
    v.el.scrollIntoView({ block: 'center' });
    v.el.classList.add('flash');
    setTimeout(() => v.el.classList.remove('flash'), 2400);
  }

  async function pickModel() {
    try {
      await composer.picker.refresh();
      if (sessionModel && composer.picker.models().some((m) => m.id === sessionModel && m.available)) {
        composer.picker.setValue(sessionModel);
      } else {
        const lastModel = [...messages].reverse().find((m) => m.role === 'assistant' && m.metadata?.model)?.metadata.model;
        if (lastModel && composer.picker.models().some((m) => m.id === lastModel && m.available)) composer.picker.setValue(lastModel);
      }
      composer.paint();
    } catch { /* the selector shows "Model" */ }
  }

  // ---- streaming ----
  function beginLive(msg, view, controller) {
    live = { controller, msg, view, stopTimer: null };
    composer.setStreaming(true);
    drawSoon();
  }

  function endLive() {
    if (!live) return;
    clearTimeout(live.stopTimer);
    live = null;
    composer.setStreaming(false);
    usage.soon(600);
  }

  /** The start part named the reply: put `msg` where the thread shows that message (from scratch). */
  function adoptStart(msg) {
    const i = messages.findIndex((m) => m.id === msg.id && m !== msg);
    const mine = messages.indexOf(msg);
    if (i >= 0) {
      if (mine >= 0) messages.splice(mine, 1);
      const j = messages.findIndex((m) => m.id === msg.id);
      messages[j] = msg;
      views.get(msg.id)?.update(msg, opts(msg, j), true);
    } else if (mine >= 0) {
      if (msg._key && views.has(msg._key)) { views.set(msg.id, views.get(msg._key)); views.delete(msg._key); }
    } else {
      messages.push(msg);
    }
  }

  /**
   * Reads a reply stream into `msg`, drawing as it goes. Resolves with `{done}` (false when the
   * connection dropped before `[DONE]`).
   */
  async function follow(res, msg, controller) {
    let result = { done: false };
    try {
      result = await readUIStream(res, (part) => {
        const what = applyPart(msg, part);
        if (what === 'start' && msg.id) adoptStart(msg);
        drawSoon();
      }, controller.signal);
    } catch (e) {
      if (e.name !== 'AbortError') console.error(e);
    }
    return result;
  }

  /** Shows and follows the streaming reply of this thread, if one streams (resume). */
  async function resume() {
    if (live || busy || !exists || destroyed) return;
    const controller = new AbortController();
    const msg = emptyAssistant();
    live = { controller, msg, view: null, stopTimer: null, resuming: true };
    composer.setStreaming(true);
    let res;
    try {
      res = await request('GET', `/v1/chat/${threadId}/stream`, { signal: controller.signal });
    } catch (e) {
      live = null;
      composer.setStreaming(false);
      return;
    }
    if (res.status === 204 || destroyed) {
      live = null;
      composer.setStreaming(false);
      if (!destroyed) refresh();
      return;
    }
    msg._key = `resume-${newId()}`;
    // Until the start part names the message, nothing changes on screen.
    const { done } = await follow(res, msg, controller);
    endLive();
    if (destroyed) return;
    if (!done && !controller.signal.aborted) setTimeout(() => resume(), 800);
    else refresh();
  }

  function adoptUrl(id) {
    const path = `/t/${id}`;
    history.replaceState(null, '', path);
    ctx.route = { path, name: 'thread', params: { id } };
    document.body.dataset.route = 'thread';
    ctx.emit('route', ctx.route);
  }

  function modelBody() {
    const m = composer.picker.model();
    const body = {};
    if (composer.picker.value) body.model = composer.picker.value;
    if (m?.capabilities?.includes('tools')) body.tools = true;
    return body;
  }

  /** Posts a chat body and streams the reply into a new assistant message after `optimistic`. */
  async function post_(body, { optimistic = [], onRefused, onAccepted } = {}) {
    busy = true;
    composer.setBusy(true);
    composer.clearError();
    const controller = new AbortController();
    const msg = emptyAssistant();
    msg._key = `pending-${newId()}`;
    messages.push(...optimistic, msg);
    live = { controller, msg, view: null, stopTimer: null };
    composer.setStreaming(true);
    stick = true;
    draw();
    toBottom();
    let res;
    try {
      res = await request('POST', '/v1/chat', { body, signal: controller.signal });
    } catch (e) {
      live = null;
      busy = false;
      composer.setBusy(false);
      composer.setStreaming(false);
      for (const m of [...optimistic, msg]) { const i = messages.indexOf(m); if (i >= 0) messages.splice(i, 1); }
      if (!destroyed) {
        draw();
        onRefused?.(e);
        if (e instanceof ApiError || e.status) {
          if (e.problem?.errors?.tool) { searchUnavailable = true; composer.setTool(null); }
          composer.showError(describeError(e, ctx.me));
          if (e.status === 429 || e.status === 402) usage.refresh();
        } else if (e.name !== 'AbortError') {
          composer.showError(h('div', { class: 'problem' }, 'Could not reach the server. Your message is still here; try again.'));
        }
      }
      return false;
    }
    busy = false;
    composer.setBusy(false);
    exists = true;
    loaded = true;
    onAccepted?.();
    const { done } = await follow(res, msg, controller);
    endLive();
    if (destroyed) return true;
    if (!done && !controller.signal.aborted) resume();
    else refresh();
    return true;
  }

  async function send({ text, files, parts, tool }) {
    if (busy || live) return;
    const fresh = !threadId;
    if (fresh) threadId = newId();
    const user = {
      id: `u${newId()}`, role: 'user',
      parts: [{ type: 'text', text }, ...parts],
      metadata: { status: 'done', sibling_count: 1, sibling_index: 0 },
    };
    const body = { id: threadId, message: { id: user.id, role: 'user', parts: user.parts }, ...modelBody() };
    if (tool) body.tool = tool;
    if (fresh) {
      adoptUrl(threadId);
      greeting.hidden = true;
      thread = { id: threadId, title: null };
      paintTitle();
    }
    const ok = await post_(body, {
      optimistic: [user],
      onAccepted: () => composer.reset(),
      onRefused: () => {
        if (fresh && !exists) {
          // Nothing was written: the new chat stays new.
          threadId = null;
          thread = null;
          history.replaceState(null, '', '/');
          ctx.route = { path: '/', name: 'new-chat', params: {} };
          document.body.dataset.route = 'new-chat';
          ctx.emit('route', ctx.route);
          paintTitle();
          greeting.hidden = false;
        }
      },
    });
    if (ok) composer.focus();
  }

  async function regenerate(msg) {
    if (busy || live) return;
    const i = messages.indexOf(msg);
    const removed = messages.splice(i, 1);
    draw();
    const ok = await post_({ id: threadId, messages: [], trigger: 'regenerate-message', messageId: msg.id, ...modelBody() }, {
      onRefused: () => { messages.splice(i, 0, ...removed); draw(); },
    });
    return ok;
  }

  async function edit(msg, text) {
    if (busy || live) return false;
    const i = messages.indexOf(msg);
    const removed = messages.splice(i);
    const files = (msg.parts || []).filter((p) => p.type === 'file');
    const user = { _key: `edit-${newId()}`, role: 'user', parts: [{ type: 'text', text }, ...files], metadata: { status: 'done' } };
    const ok = await post_({ id: threadId, message: { id: msg.id, role: 'user', parts: user.parts }, ...modelBody() }, {
      optimistic: [user],
      onRefused: () => { messages.splice(i, messages.length - i, ...removed); const v = views.get(msg.id); if (v) v.update(msg, opts(msg, i), true); draw(); },
    });
    return ok;
  }

  async function stop() {
    if (!live) return;
    const current = live;
    try {
      await post(`/v1/chat/${threadId}/stop`);
    } catch (e) {
      if (e.code !== 'no_active_reply') toast(e.message, 'error');
    }
    // The stream ends by itself with `abort`; if it does not within a few seconds, let go.
    current.stopTimer = setTimeout(() => { if (live === current) current.controller.abort(); }, 6000);
  }

  async function switchVersion(msg, delta) {
    if (busy || live) return;
    const md = msg.metadata || {};
    const target = md.sibling_ids?.[(md.sibling_index ?? 0) + delta];
    if (!target) return;
    const v = views.get(msg.id);
    const offset = v ? v.el.getBoundingClientRect().top - scroller.getBoundingClientRect().top : null;
    try {
      await put(`/v1/threads/${threadId}/current`, { message_id: target });
      const page = await get(`/v1/threads/${threadId}/messages`, { limit: PAGE });
      stick = false;
      setMessages(page.data, page.next_cursor);
      const nv = views.get(target);
      if (nv && offset !== null) {
        scroller.scrollTop += nv.el.getBoundingClientRect().top - scroller.getBoundingClientRect().top - offset;
      }
      stick = atBottom();
      nv?.el.querySelector(delta < 0 ? '[aria-label="Previous version"]' : '[aria-label="Next version"]')?.focus();
    } catch (e) {
      toast(e.message, 'error');
    }
  }

  async function branch(msg) {
    try {
      const t = await post(`/v1/threads/${threadId}/branch`, { message_id: msg.id });
      toast('Branched into a new chat');
      ctx.navigate(`/t/${t.id}`);
    } catch (e) {
      toast(e.code === 'reply_in_progress' ? 'Wait for the reply to finish before branching.' : e.message, 'error');
    }
  }

  async function checkTool(t) {
    if (t === 'search') return true;
    try {
      const answer = await post('/v1/chat/check', { model: composer.picker.value || undefined, tool: t });
      if (answer.allowed) { composer.clearError(); return true; }
      const p = answer.problem || {};
      composer.showError(describeError({ status: p.status, code: p.code, detail: p.detail, problem: p }, ctx.me));
      return false;
    } catch (e) {
      composer.showError(describeError(e, ctx.me));
      return false;
    }
  }

  function typingSignal() {
    if (!exists || !threadId) return;
    const now = Date.now();
    if (now - lastTypingSent < 3000) return;
    lastTypingSent = now;
    post(`/v1/threads/${threadId}/typing`).catch(() => {});
  }

  function deleted() {
    if (live) live.controller.abort();
    composer.el.hidden = true;
    list.replaceChildren();
    views.clear();
    messages = [];
    showState(h('div', { class: 'empty-state' }, h('h2', null, 'This chat was deleted'),
      h('a', { class: 'btn btn-primary', href: '/' }, 'Start a new chat')));
  }

  // ---- feed ----
  cleanups.push(onFeed((item) => {
    if (destroyed) return;
    if (item.type === 'ready') { if (loaded && !busy && !live) refresh(); return; }
    if (!threadId || item.thread_id !== threadId) return;
    switch (item.type) {
      case 'thread.titled': if (thread) { thread.title = item.title; paintTitle(); } break;
      case 'thread.deleted': deleted(); break;
      case 'reply.started': exists = true; if (!busy && !live) resume(); break;
      case 'message.posted':
      case 'message.hidden':
        exists = true;
        if (!busy && !live) refresh();
        break;
      case 'thread.updated': if (item.current_message_id && !busy && !live) refresh(); break;
      case 'reply.finished': if (!busy && !live) refresh(); break;
      case 'typing':
        composer.setTyping(true);
        clearTimeout(typingTimer);
        typingTimer = setTimeout(() => composer.setTyping(false), 5000);
        break;
      default:
    }
  }));
  cleanups.push(ctx.on('chat:new', () => composer.focus()));

  // ---- drag and drop ----
  let dragDepth = 0;
  const hasFiles = (e) => Array.from(e.dataTransfer?.types || []).includes('Files');
  section.addEventListener('dragenter', (e) => { if (!hasFiles(e)) return; e.preventDefault(); dragDepth++; dropOverlay.hidden = false; });
  section.addEventListener('dragover', (e) => { if (!hasFiles(e)) return; e.preventDefault(); e.dataTransfer.dropEffect = 'copy'; });
  section.addEventListener('dragleave', () => { dragDepth = Math.max(0, dragDepth - 1); if (!dragDepth) dropOverlay.hidden = true; });
  section.addEventListener('drop', (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    dragDepth = 0;
    dropOverlay.hidden = true;
    composer.attachments.add(e.dataTransfer.files);
    composer.focus();
  });

  // ---- start ----
  if (threadId) {
    title.textContent = '';
    load();
  } else {
    paintTitle();
    paintGreeting();
    pickModel();
  }
  setTimeout(() => { if (!destroyed && !matchMedia('(max-width: 760px)').matches) composer.focus(); }, 0);

  return () => {
    destroyed = true;
    if (live) live.controller.abort();
    cancelAnimationFrame(raf);
    clearTimeout(typingTimer);
    usage.destroy();
    composer.picker.close();
    for (const c of cleanups) { try { c(); } catch { /* ignore */ } }
  };
}
