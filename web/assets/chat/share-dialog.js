// The "Share" dialog of a thread: makes a read-only link to the thread's current path
// (`POST /v1/threads/{id}/shares`, reusing a live link of the same last message) and shows
// `/s/{share_id}` with a copy button; lists the thread's other live links with Revoke.

import { del, get, post } from '../lib/api.js';
import { h, relativeTime } from '../lib/dom.js';
import { copyText, icon } from './ui.js';

const shareUrl = (id) => `${location.origin}/s/${id}`;

export async function openShareDialog(threadId, { lastMessageId } = {}) {
  const status = h('p', { class: 'muted' }, 'Creating a link…');
  const linkBox = h('div', { class: 'share-link', hidden: true });
  const others = h('ul', { class: 'share-list' });
  const dialog = h('dialog', { class: 'chat-dialog share-dialog', 'aria-label': 'Share this chat' },
    h('h2', null, 'Share this chat'),
    h('p', { class: 'muted' }, 'Anyone with the link can read the conversation up to now, without signing in. Later messages are not shown.'),
    status, linkBox, others,
    h('div', { class: 'dialog-actions' }, h('button', { type: 'button', class: 'btn', onclick: () => dialog.close() }, 'Close')));
  dialog.addEventListener('close', () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();

  function showLink(share) {
    const url = shareUrl(share.id);
    const input = h('input', { type: 'text', readonly: true, value: url, 'aria-label': 'Share link', class: 'share-url', onfocus: (e) => e.target.select() });
    linkBox.replaceChildren(input,
      h('button', { type: 'button', class: 'btn btn-primary', onclick: () => copyText(url, 'Link copied') }, icon('copy', 16), 'Copy link'),
      h('a', { class: 'btn', href: `/s/${share.id}`, target: '_blank', rel: 'noopener' }, 'Open'));
    linkBox.hidden = false;
  }

  function listOthers(shares, shown) {
    const rest = shares.filter((s) => s.id !== shown.id);
    others.replaceChildren(...(rest.length ? [h('li', { class: 'muted share-list-head' }, 'Other live links')] : []),
      ...rest.map((s) => {
        const li = h('li', null,
          h('a', { href: `/s/${s.id}`, target: '_blank', rel: 'noopener' }, `/s/${s.id}`),
          h('span', { class: 'muted' }, ` · ${relativeTime(s.created_at)} `),
          h('button', { type: 'button', class: 'btn btn-danger btn-small', onclick: async () => {
            try { await del(`/v1/shares/${s.id}`); li.remove(); } catch (e) { li.append(h('span', { class: 'error-text' }, ` ${e.message}`)); }
          } }, 'Revoke'));
        return li;
      }));
  }

  try {
    let last = lastMessageId;
    if (!last) {
      const page = await get(`/v1/threads/${threadId}/messages`, { limit: 1 });
      last = page.data[page.data.length - 1]?.id;
    }
    const existing = (await get(`/v1/threads/${threadId}/shares`)).data || [];
    let share = existing.find((s) => s.message_id === last);
    if (!share) share = await post(`/v1/threads/${threadId}/shares`, {});
    status.textContent = 'This link shows the chat as it is now:';
    showLink(share);
    listOthers(existing, share);
  } catch (e) {
    status.className = 'error-text';
    status.textContent = e.status === 422 ? 'There is nothing to share yet: send a message first.' : (e.message || 'Could not create a link.');
  }
  return dialog;
}
