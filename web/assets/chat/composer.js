// The composer at the bottom of the chat: the message box (`aria-label="Message"`; Enter
// sends, Shift+Enter is a new line), attachments (picker `aria-label="Attach files"`, paste),
// the model selector, the search/research toggles, Send (`aria-label="Send"`) and, while a
// reply streams, Stop (`aria-label="Stop"`). Errors show above the box; what was typed stays.

import { h } from '../lib/dom.js';
import { createAttachments } from './attachments.js';
import { createModelPicker } from './models.js';
import { icon } from './ui.js';

/**
 * opts: {ctx, onSend({text, files: [meta], parts: [fileParts], tool}), onStop(), onTyping(),
 *        onModel(id), onTool(tool) -> Promise<bool> (may refuse a toggle)}
 */
export function createComposer(opts) {
  const { ctx } = opts;
  let streaming = false;
  let busy = false;
  let tool = null; // 'search' | 'research' | null

  const textarea = h('textarea', {
    class: 'composer-input', 'aria-label': 'Message', rows: 1, placeholder: 'Ask anything…', enterkeyhint: 'send',
  });
  const attachments = createAttachments({ onChange: paint });
  const fileInput = h('input', {
    type: 'file', multiple: true, hidden: true, tabindex: '-1', 'aria-hidden': 'true',
    accept: 'image/png,image/jpeg,image/gif,image/webp,application/pdf,text/*,.md,.csv,.json,.txt,.rs,.py,.js,.ts,.go,.java,.c,.h,.cpp,.rb,.sh,.toml,.yaml,.yml',
  });
  const attachButton = h('button', { type: 'button', class: 'btn-icon composer-attach', 'aria-label': 'Attach files', title: 'Attach files' }, icon('clip', 18));
  const picker = createModelPicker({ me: () => ctx.me, onChange: (id) => { paint(); opts.onModel?.(id); } });

  const searchToggle = h('button', { type: 'button', class: 'tool-toggle', 'aria-pressed': 'false', title: 'Search the web first' }, icon('globe', 15), h('span', null, 'Search'));
  const researchToggle = h('button', { type: 'button', class: 'tool-toggle', 'aria-pressed': 'false', title: 'Research: plan, search and read before answering' }, icon('flask', 15), h('span', null, 'Research'));
  const tools = h('div', { class: 'tool-toggles', role: 'group', 'aria-label': 'Tools' }, searchToggle, researchToggle);

  const sendButton = h('button', { type: 'submit', class: 'btn btn-primary composer-send', 'aria-label': 'Send', title: 'Send (Enter)' }, icon('send', 18));
  const stopButton = h('button', { type: 'button', class: 'btn composer-stop', 'aria-label': 'Stop', title: 'Stop the reply', hidden: true }, icon('stop', 16));
  const error = h('div', { class: 'composer-error', role: 'alert', hidden: true });
  const notice = h('div', { class: 'composer-notice', hidden: true });
  const typing = h('div', { class: 'typing-indicator', hidden: true, 'aria-live': 'polite' }, h('span', { class: 'typing-dots' }, h('span'), h('span'), h('span')), ' Typing on another device…');

  const form = h('form', { class: 'composer', 'aria-label': 'Compose a message' },
    error,
    attachments.el,
    textarea,
    h('div', { class: 'composer-bar' },
      h('div', { class: 'composer-left' }, attachButton, fileInput, picker.el, tools),
      h('div', { class: 'composer-right' }, stopButton, sendButton)));
  const el = h('div', { class: 'composer-wrap' }, typing, notice, form);

  function autosize() {
    textarea.style.height = 'auto';
    textarea.style.height = `${Math.min(textarea.scrollHeight, 240)}px`;
  }

  function paint() {
    const m = picker.model();
    const caps = m?.capabilities || [];
    const hasText = textarea.value.trim().length > 0;
    sendButton.disabled = streaming || busy || !hasText || attachments.busy();
    sendButton.hidden = streaming;
    stopButton.hidden = !streaming;
    // Search and research show for models that take tools, on a server that has a search API.
    tools.hidden = !caps.includes('tools') || !!opts.toolsUnavailable?.();
    if (tools.hidden && tool) tool = null;
    searchToggle.setAttribute('aria-pressed', String(tool === 'search'));
    researchToggle.setAttribute('aria-pressed', String(tool === 'research'));
    // A warning when the files do not suit the model (the server would answer 422).
    const images = attachments.files().some((f) => f.media_type?.startsWith('image/'));
    if (images && m && !caps.includes('vision')) {
      notice.textContent = `${m.id} cannot see images. Choose a model with Vision to send them.`;
      notice.hidden = false;
      sendButton.disabled = true;
    } else {
      notice.hidden = true;
    }
  }

  function submit() {
    if (sendButton.disabled) return;
    const text = textarea.value.trim();
    if (!text) return;
    opts.onSend({ text, files: attachments.files(), parts: attachments.parts(), tool });
  }

  form.addEventListener('submit', (e) => { e.preventDefault(); submit(); });
  textarea.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && !e.altKey && !e.ctrlKey && !e.metaKey) {
      e.preventDefault();
      submit();
    }
  });
  textarea.addEventListener('input', () => { autosize(); paint(); if (textarea.value) opts.onTyping?.(); });
  textarea.addEventListener('paste', (e) => {
    const files = Array.from(e.clipboardData?.files || []);
    if (files.length) { e.preventDefault(); attachments.add(files); }
  });
  attachButton.addEventListener('click', () => fileInput.click());
  fileInput.addEventListener('change', () => { attachments.add(fileInput.files); fileInput.value = ''; textarea.focus(); });
  stopButton.addEventListener('click', () => opts.onStop?.());

  async function toggle(which) {
    const next = tool === which ? null : which;
    if (next && opts.onTool) {
      const ok = await opts.onTool(next);
      if (!ok) return;
    }
    tool = next;
    paint();
  }
  searchToggle.addEventListener('click', () => toggle('search'));
  researchToggle.addEventListener('click', () => toggle('research'));

  paint();

  return {
    el,
    form,
    textarea,
    picker,
    attachments,
    get text() { return textarea.value; },
    setText(text) { textarea.value = text; autosize(); paint(); },
    focus() { textarea.focus(); },
    /** After an accepted send: empty the box and the attachments. */
    reset() { textarea.value = ''; attachments.clear(); tool = null; autosize(); paint(); },
    setStreaming(on) { streaming = on; paint(); },
    setBusy(on) { busy = on; paint(); },
    showError(node) { error.replaceChildren(node, h('button', { type: 'button', class: 'btn-icon error-close', 'aria-label': 'Dismiss', onclick: () => { error.hidden = true; } }, icon('x', 14))); error.hidden = false; },
    clearError() { error.hidden = true; error.replaceChildren(); },
    setTyping(on) { typing.hidden = !on; },
    setTool(t) { tool = t; paint(); },
    paint,
  };
}
