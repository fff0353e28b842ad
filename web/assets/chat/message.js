// One message of a thread as DOM: `article.message[data-role][data-message-id]`.
// User messages are bubbles (text as text, files as previews); replies are Markdown prose with
// their reasoning (`details.reasoning`, open while it streams), tool calls (`.tool-call`) and
// research progress (`.research`) in the order they came. Under each message: the
// `‹ 2/3 ›` version switcher, copy, edit (user), regenerate (last reply) and branch.
//
// `createMessageView(msg, handlers)` returns `{el, update(msg, opts)}`. While a reply streams
// the view calls `update` with the same (mutated) message object; only the parts whose `_v`
// changed are drawn again, so a long reply does not re-render from the top on every token.

import { get } from '../lib/api.js';
import { h } from '../lib/dom.js';
import { renderMarkdown } from '../lib/markdown.js';
import { messageText } from './stream.js';
import { formatSize, icon } from './ui.js';

function iconButton(label, name, onclick, extra = {}) {
  return h('button', { type: 'button', class: 'btn-icon msg-action', 'aria-label': label, title: label, onclick, ...extra }, icon(name, 16));
}

function markdown(text) {
  const box = h('div', { class: 'markdown' });
  try {
    box.append(renderMarkdown(text || ''));
  } catch (e) {
    console.error(e);
    box.append(h('p', { class: 'plain' }, text || ''));
  }
  return box;
}

const fileId = (url) => (/\/v1\/files\/([^/]+)\/content/.exec(url || '') || [])[1] || null;

/** The files of a message: images as previews, others as chips linking to the content. */
export function renderFiles(parts) {
  const files = parts.filter((p) => p.type === 'file');
  if (!files.length) return null;
  return h('div', { class: 'message-files' }, files.map((f) => {
    const name = f.filename || 'file';
    if ((f.mediaType || '').startsWith('image/')) {
      return h('a', { class: 'file-image', href: f.url, target: '_blank', rel: 'noopener', title: name },
        h('img', { src: f.url, alt: name, loading: 'lazy', decoding: 'async' }));
    }
    const size = h('span', { class: 'file-size' });
    const id = fileId(f.url);
    if (id) get(`/v1/files/${id}`).then((m) => { size.textContent = formatSize(m.size); }).catch(() => {});
    return h('a', { class: 'file-chip', href: f.url, download: name, title: name },
      icon('file', 16), h('span', { class: 'file-name' }, name), size);
  }));
}

function json(value) {
  if (value === undefined) return '';
  if (typeof value === 'string') return value;
  try { return JSON.stringify(value, null, 2); } catch { return String(value); }
}

const TOOL_STATE = {
  'input-streaming': 'Preparing…',
  'input-available': 'Running…',
  'output-available': 'Done',
  'output-error': 'Failed',
};

function renderTool(p) {
  const input = p.input !== undefined ? json(p.input) : (p.inputText || '');
  const running = p.state === 'input-streaming' || p.state === 'input-available';
  const results = Array.isArray(p.output?.results) ? p.output.results : Array.isArray(p.output) ? p.output : null;
  const summary = p.input && typeof p.input === 'object' ? (p.input.query || p.input.url || '') : '';
  return h('details', { class: 'tool-call', dataset: { state: p.state || 'input-streaming', tool: p.toolName || '' } },
    h('summary', null,
      h('span', { class: ['tool-dot', running && 'pulse'] }),
      h('span', { class: 'tool-name' }, p.toolName || 'tool'),
      summary ? h('span', { class: 'tool-summary' }, String(summary)) : null,
      h('span', { class: 'tool-state' }, TOOL_STATE[p.state] || p.state || '')),
    h('div', { class: 'tool-body' },
      h('div', { class: 'tool-label' }, 'Input'),
      h('pre', { class: 'tool-json' }, input || '—'),
      p.state === 'output-error' ? [h('div', { class: 'tool-label' }, 'Error'), h('pre', { class: 'tool-json error-text' }, p.errorText || '')] : null,
      p.state === 'output-available' ? [
        h('div', { class: 'tool-label' }, 'Output'),
        results && results.every((r) => r && r.url)
          ? h('ul', { class: 'tool-results' }, results.map((r) => h('li', null,
            h('a', { href: r.url, target: '_blank', rel: 'noopener noreferrer' }, r.title || r.url),
            r.snippet ? h('div', { class: 'muted' }, String(r.snippet).slice(0, 240)) : null)))
          : h('pre', { class: 'tool-json' }, json(p.output)),
      ] : null));
}

const plural = (n, one, many) => `${n} ${n === 1 ? one : many}`;
const count = (v) => (Array.isArray(v) ? v.length : Number(v) || 0);

function renderResearch(parts, streaming) {
  const steps = [];
  let question = '';
  let complete = null;
  for (const p of parts) {
    const d = p.data || {};
    if (p.type === 'data-research-start') question = d.question || '';
    else if (p.type === 'data-research-search') {
      steps.push(h('li', { class: ['research-step', d.error && 'failed'] },
        h('span', { class: 'research-kind' }, 'Searched'), ' ', h('q', null, d.query || ''),
        d.error ? h('span', { class: 'error-text' }, ` — ${d.error}`) : h('span', { class: 'muted' }, ` — ${(d.results || []).length} results`),
        (d.results || []).length ? h('ul', { class: 'research-results' }, d.results.slice(0, 5).map((r) => h('li', null,
          h('a', { href: r.url, target: '_blank', rel: 'noopener noreferrer' }, r.title || r.url)))) : null));
    } else if (p.type === 'data-research-read') {
      steps.push(h('li', { class: 'research-step' }, h('span', { class: 'research-kind' }, 'Read'), ' ',
        h('a', { href: d.url, target: '_blank', rel: 'noopener noreferrer' }, d.title || d.url),
        d.chars ? h('span', { class: 'muted' }, ` — ${d.chars.toLocaleString()} characters`) : null));
    } else if (p.type === 'data-research-complete') complete = d;
  }
  const done = !!complete;
  return h('details', { class: 'research', open: !done && streaming ? true : null, dataset: { done: String(done) } },
    h('summary', null, h('span', { class: ['tool-dot', !done && streaming && 'pulse'] }),
      h('span', { class: 'tool-name' }, done ? 'Research' : 'Researching…'),
      question ? h('span', { class: 'tool-summary' }, question) : null,
      done ? h('span', { class: 'tool-state' }, `${plural(count(complete.queries), 'search', 'searches')} · ${plural(count(complete.sources), 'source', 'sources')}`) : null),
    h('ol', { class: 'research-steps' }, steps));
}

/** Groups a reply's parts into drawable blocks (consecutive research parts form one). */
function blocks(parts) {
  const out = [];
  for (const p of parts) {
    if (p.type === 'step-start' || p.type === 'file') continue;
    if (p.type.startsWith('data-research-')) {
      const last = out[out.length - 1];
      if (last?.type === 'research') { last.parts.push(p); last.v += `.${p._v || 0}`; continue; }
      out.push({ type: 'research', parts: [p], v: `${p._v || 0}` });
      continue;
    }
    if (p.type.startsWith('data-')) continue;
    if ((p.type === 'text' || p.type === 'reasoning') && !p.text && p.state !== 'streaming') continue;
    out.push({ type: p.type, part: p, v: `${p._v || 0}:${p.state || ''}` });
  }
  return out;
}

/**
 * handlers: {onCopy(msg), onEdit(msg, text), onRegenerate(msg), onBranch(msg), onSwitch(msg, delta)}
 * opts of update: {isLast, streaming, busy}
 */
export function createMessageView(msg, handlers = {}) {
  const el = h('article', { class: 'message' });
  const body = h('div', { class: 'message-body' });
  const footer = h('div', { class: 'message-footer' });
  el.append(body, footer);
  let drawn = []; // [{key, v, node}]
  let current = null;
  let editing = false;
  const userOpen = new Map(); // block key -> open, once the user toggled it
  let lastOpts = {};

  function drawAssistant(m, streaming) {
    const list = blocks(m.parts || []);
    const next = [];
    list.forEach((b, i) => {
      const key = `${i}:${b.type}`;
      const old = drawn[i];
      if (old && old.key === key && old.v === b.v && old.node.isConnected) { next.push(old); return; }
      let node;
      if (b.type === 'text') {
        node = markdown(b.part.text);
        node.classList.toggle('streaming', b.part.state === 'streaming');
      } else if (b.type === 'reasoning') {
        const live = b.part.state === 'streaming';
        node = h('details', { class: 'reasoning', dataset: { state: live ? 'streaming' : 'done' } },
          h('summary', null, live ? 'Thinking…' : 'Reasoning'),
          h('div', { class: 'reasoning-text' }, b.part.text));
        node.open = userOpen.has(key) ? userOpen.get(key) : live;
      } else if (b.type === 'dynamic-tool') {
        node = renderTool(b.part);
        node.open = userOpen.get(key) || false;
      } else if (b.type === 'research') {
        node = renderResearch(b.parts, streaming);
        if (userOpen.has(key)) node.open = userOpen.get(key);
      } else {
        node = h('div', { class: 'part-unknown muted' }, b.type);
      }
      if (node.tagName === 'DETAILS') {
        const summary = node.querySelector('summary');
        summary?.addEventListener('click', () => userOpen.set(key, !node.open));
      }
      if (old?.node?.isConnected) old.node.replaceWith(node);
      else body.append(node);
      next.push({ key, v: b.v, node });
    });
    for (let i = list.length; i < drawn.length; i++) drawn[i].node.remove();
    drawn = next;
    // Order check (cheap): make the DOM order follow `drawn`.
    let prev = null;
    for (const d of drawn) {
      if (d.node.previousElementSibling !== prev && !(prev === null && d.node === body.firstElementChild)) {
        if (prev) prev.after(d.node); else body.prepend(d.node);
      }
      prev = d.node;
    }
    let extra = body.querySelector(':scope > .thinking');
    const visible = list.some((b) => b.type !== 'reasoning' || b.part.text);
    if (streaming && !visible) {
      if (!extra) body.append(h('div', { class: 'thinking', role: 'status', 'aria-label': 'Waiting for the reply' }, h('span'), h('span'), h('span')));
    } else if (extra) extra.remove();
    let err = body.querySelector(':scope > .message-error');
    const md = m.metadata || {};
    const errorText = md.status === 'failed' ? (md.error || 'The reply failed.') : md.status === 'interrupted' ? (md.error || 'The reply was interrupted.') : null;
    if (errorText) {
      if (!err) { err = h('div', { class: 'message-error', role: 'alert' }); body.append(err); }
      err.textContent = errorText;
    } else if (err) err.remove();
    if (!body.querySelector(':scope > .message-files')) {
      const files = renderFiles(m.parts || []);
      if (files) body.append(files);
    }
  }

  function drawUser(m) {
    body.replaceChildren(h('div', { class: 'bubble' },
      renderFiles(m.parts || []),
      h('div', { class: 'user-text' }, messageText(m))));
  }

  function startEdit() {
    editing = true;
    const area = h('textarea', { class: 'edit-text', 'aria-label': 'Edit message', rows: 3 });
    area.value = messageText(current);
    const save = async () => {
      const text = area.value.trim();
      if (!text) return;
      const ok = await handlers.onEdit?.(current, text);
      if (ok !== false) { editing = false; }
    };
    area.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); save(); }
      if (e.key === 'Escape') { e.preventDefault(); cancel(); }
    });
    const cancel = () => { editing = false; update(current, lastOpts, true); };
    body.replaceChildren(h('div', { class: 'edit-box' }, area,
      h('div', { class: 'edit-actions' },
        h('button', { type: 'button', class: 'btn', onclick: cancel }, 'Cancel'),
        h('button', { type: 'button', class: 'btn btn-primary', onclick: save }, 'Save & send'))));
    footer.replaceChildren();
    area.focus();
    area.setSelectionRange(area.value.length, area.value.length);
  }

  function drawFooter(m, { isLast, streaming, busy }) {
    const md = m.metadata || {};
    const bits = [];
    if (md.sibling_count > 1) {
      const i = md.sibling_index ?? 0;
      bits.push(h('span', { class: 'switcher' },
        iconButton('Previous version', 'chevronLeft', () => handlers.onSwitch?.(m, -1), { disabled: i <= 0 || busy ? true : null }),
        h('span', { class: 'switcher-count', 'aria-live': 'polite' }, `${i + 1}/${md.sibling_count}`),
        iconButton('Next version', 'chevronRight', () => handlers.onSwitch?.(m, 1), { disabled: i >= md.sibling_count - 1 || busy ? true : null })));
    }
    if (!streaming) {
      bits.push(iconButton('Copy message', 'copy', () => handlers.onCopy?.(m)));
      if (m.role === 'user') bits.push(iconButton('Edit message', 'edit', startEdit, { disabled: busy ? true : null }));
      if (m.role === 'assistant' && isLast) bits.push(iconButton('Regenerate', 'retry', () => handlers.onRegenerate?.(m), { disabled: busy ? true : null }));
      bits.push(iconButton('Branch into new thread', 'branch', () => handlers.onBranch?.(m), { disabled: busy ? true : null }));
    }
    if (m.role === 'assistant') {
      const status = md.status === 'stopped' ? 'Stopped' : md.status === 'interrupted' ? 'Interrupted' : md.status === 'failed' ? 'Failed' : null;
      bits.push(h('span', { class: 'msg-meta' }, md.model || '', status ? h('span', { class: 'badge badge-muted' }, status) : null));
    }
    footer.replaceChildren(...bits);
    footer.hidden = bits.length === 0;
  }

  function update(m, opts = {}, force = false) {
    lastOpts = opts;
    const fresh = m !== current || force;
    current = m;
    el.dataset.role = m.role;
    if (m.id) el.dataset.messageId = m.id;
    el.dataset.status = m.metadata?.status || '';
    el.classList.toggle('is-streaming', !!opts.streaming);
    if (editing && !fresh) return;
    if (m.role === 'user') {
      if (fresh) drawUser(m);
    } else {
      if (fresh) { drawn.forEach((d) => d.node.remove()); drawn = []; body.replaceChildren(); userOpen.clear(); }
      drawAssistant(m, !!opts.streaming);
    }
    drawFooter(m, opts);
  }

  update(msg, {}, true);
  return { el, update, get msg() { return current; } };
}
