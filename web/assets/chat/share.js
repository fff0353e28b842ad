// The public share page `/s/{id}`: a shared conversation (`GET /v1/shares/{id}`, no session
// needed) rendered read-only with its title and date, and "Continue this chat", which starts a
// session if there is none (`ensureSession`), copies the conversation into a thread of the
// caller (`POST /v1/shares/{id}/copy`) and opens it with a full page load (so the sidebar
// mounts). A revoked or unknown link shows a not-found state.

import { ensureSession, get, post } from '../lib/api.js';
import { h, replace } from '../lib/dom.js';
import { renderMarkdown } from '../lib/markdown.js';

function messageNode(m) {
  const text = (m.parts || []).filter((p) => p.type === 'text').map((p) => p.text).join('\n\n');
  const reasoning = (m.parts || []).filter((p) => p.type === 'reasoning').map((p) => p.text).join('\n\n');
  if (m.role === 'user') {
    return h('article', { class: 'message', dataset: { role: 'user', messageId: m.id } },
      h('div', { class: 'message-body' }, h('div', { class: 'bubble' }, h('div', { class: 'user-text' }, text))));
  }
  const md = h('div', { class: 'markdown' });
  try { md.append(renderMarkdown(text)); } catch { md.append(h('p', null, text)); }
  return h('article', { class: 'message', dataset: { role: 'assistant', messageId: m.id } },
    h('div', { class: 'message-body' },
      reasoning ? h('details', { class: 'reasoning' }, h('summary', null, 'Reasoning'), h('div', { class: 'reasoning-text' }, reasoning)) : null,
      md),
    m.metadata?.model ? h('div', { class: 'message-footer' }, h('span', { class: 'msg-meta' }, m.metadata.model)) : null);
}

export function mount(root, params) {
  let gone = false;
  const page = h('div', { class: 'share-page' }, h('p', { class: 'muted share-loading' }, 'Loading…'));
  replace(root, page);
  document.title = 'Shared chat · Threadline';

  (async () => {
    let share;
    try {
      share = await get(`/v1/shares/${params.id}`);
    } catch (e) {
      if (gone) return;
      replace(page, h('section', { class: 'empty-state share-missing' },
        h('h1', null, e.status === 404 ? 'This link does not exist' : 'Could not open this link'),
        h('p', { class: 'muted' }, e.status === 404 ? 'It may have been revoked by its owner, or the chat was deleted.' : (e.message || '')),
        h('a', { class: 'btn btn-primary', href: '/' }, 'Start a new chat')));
      return;
    }
    if (gone) return;
    const titleText = share.title || 'Shared chat';
    document.title = `${titleText} · Threadline`;
    const status = h('p', { class: 'error-text', role: 'alert', hidden: true });
    const cont = h('button', { type: 'button', class: 'btn btn-primary' }, 'Continue this chat');
    cont.addEventListener('click', async () => {
      cont.disabled = true;
      status.hidden = true;
      try {
        await ensureSession();
        const thread = await post(`/v1/shares/${params.id}/copy`);
        location.assign(`/t/${thread.id}`);
      } catch (e) {
        cont.disabled = false;
        status.textContent = e.code === 'reply_in_progress' ? 'A reply is still being written in this chat; try again in a moment.' : (e.message || 'Could not copy the chat.');
        status.hidden = false;
      }
    });
    replace(page,
      h('header', { class: 'share-header' },
        h('a', { class: 'brand', href: '/' }, h('img', { src: '/assets/icon.svg', alt: '', width: 22, height: 22 }), h('span', null, 'Threadline')),
        h('span', { class: 'badge badge-muted' }, 'Shared chat · read-only')),
      h('div', { class: 'chat-column share-column' },
        h('h1', { class: 'share-title' }, titleText),
        h('p', { class: 'muted share-date' }, `Shared ${new Date(share.created_at).toLocaleString(undefined, { dateStyle: 'long', timeStyle: 'short' })}`),
        h('div', { class: 'messages' }, (share.messages || []).map(messageNode)),
        h('div', { class: 'share-continue' }, h('p', { class: 'muted' }, 'Want to keep going? A copy of this chat becomes yours.'), cont, status)));
  })();

  return () => { gone = true; };
}
