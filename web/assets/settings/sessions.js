// Settings → Sessions: `GET /v1/me/sessions` (device, IP, created, last seen; this browser's
// marked), revoke one (`DELETE /v1/me/sessions/{id}`), and sign out of this browser
// (`logout()`, then a full reload, which starts a fresh anonymous session).

import { h, replace, toast } from '../lib/dom.js';
import { get, del, logout } from '../lib/api.js';
import { section, loading, errorPanel, describeError, confirmDialog, relativeTimeEl, timeEl, busy } from './ui.js';

export function render(panel, ctx) {
  let gone = false;
  replace(panel, loading());
  load();

  async function load() {
    try {
      const list = await get('/v1/me/sessions');
      if (!gone) draw(list.data);
    } catch (e) {
      if (!gone) replace(panel, errorPanel(e, load));
    }
  }

  function draw(sessions) {
    const anonymous = ctx.me?.kind === 'anonymous';
    const signOut = h('button', { class: 'btn btn-danger sign-out', type: 'button', onclick: () => signOutHere(signOut) }, 'Sign out of this browser');
    replace(panel,
      section('Where you are signed in',
        h('p', { class: 'muted' }, 'Each browser, app or script that signed in to your account has a session. Revoke the ones you do not recognise.'),
        h('ul', { class: 'session-list', 'aria-label': 'Sessions' }, sessions.map(sessionItem))),
      section('Sign out',
        anonymous
          ? h('p', { class: 'warning-text' }, 'You have no account yet: after signing out, the chats of this browser can no longer be opened. ',
            h('a', { href: '/signup', 'data-link': '' }, 'Sign up'), ' first to keep them.')
          : h('p', { class: 'muted' }, 'Signs this browser out. Your chats stay in your account.'),
        signOut));
  }

  function sessionItem(s) {
    const revoke = s.current ? null : h('button', {
      class: 'btn btn-danger', type: 'button', 'aria-label': `Revoke the session of ${s.device || 'unknown device'}`,
      onclick: () => revokeSession(s, revoke),
    }, 'Revoke');
    return h('li', { class: ['card', 'session', s.current && 'session-current'], dataset: { sessionId: s.id } },
      h('div', { class: 'session-main' },
        h('strong', { class: 'session-device', title: s.user_agent || '' }, s.device || s.user_agent || 'Unknown device'),
        s.current ? h('span', { class: 'badge session-this' }, 'This browser') : null,
        h('div', { class: 'muted session-meta' },
          s.ip ? `${s.ip} · ` : '',
          'last used ', relativeTimeEl(s.last_seen_at),
          ' · signed in ', timeEl(s.created_at))),
      revoke);
  }

  async function revokeSession(s, button) {
    const ok = await confirmDialog({
      title: 'Revoke this session?',
      body: `${s.device || 'That device'} will be signed out at once.`,
      confirm: 'Revoke', danger: true,
    });
    if (!ok) return;
    try {
      await busy(button, () => del(`/v1/me/sessions/${encodeURIComponent(s.id)}`), 'Revoking…');
      toast('Session revoked');
      load();
    } catch (err) {
      toast(describeError(err), 'error');
    }
  }

  async function signOutHere(button) {
    if (ctx.me?.kind === 'anonymous') {
      const ok = await confirmDialog({
        title: 'Sign out without an account?',
        body: 'The chats of this browser will no longer be reachable. Sign up instead to keep them.',
        confirm: 'Sign out anyway', danger: true,
      });
      if (!ok) return;
    }
    try {
      await busy(button, () => logout(), 'Signing out…');
    } catch (err) {
      if (err.status !== 401 && err.status !== 404) { toast(describeError(err), 'error'); return; }
    }
    location.assign('/');
  }

  return () => { gone = true; };
}
