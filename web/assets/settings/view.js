// The account pages, `/settings[/{tab}]`: a row of tab links and the chosen tab's panel.
// Each tab is its own module exporting `render(panel, ctx) -> cleanup?`:
//   profile (preferences, theme) · usage (credits and plan) · sessions · api-keys · data.
// Anonymous accounts see a banner inviting them to sign up (their chats are kept).

import { h, replace, loadInto } from '../lib/dom.js';

export const TABS = [
  { id: 'profile', label: 'Profile & preferences', load: () => import('./profile.js') },
  { id: 'usage', label: 'Usage & plan', load: () => import('./usage.js') },
  { id: 'sessions', label: 'Sessions', load: () => import('./sessions.js') },
  { id: 'api-keys', label: 'API keys', load: () => import('./keys.js') },
  { id: 'data', label: 'Data', load: () => import('./data.js') },
];

export function mount(root, params, ctx) {
  const tab = TABS.find((t) => t.id === (params.tab || 'profile'));
  const nav = h('nav', { class: 'tabs settings-tabs', 'aria-label': 'Settings' },
    TABS.map((t) => h('a', {
      href: t.id === 'profile' ? '/settings' : `/settings/${t.id}`,
      'data-link': '',
      'aria-current': t === tab ? 'page' : null,
    }, t.label)));

  const panel = h('div', { class: 'settings-panel', id: 'settings-panel' });
  const page = h('div', { class: 'page settings-page' },
    h('h1', null, 'Settings'),
    anonymousBanner(ctx.me),
    nav,
    panel);
  replace(root, page);

  if (!tab) {
    document.title = 'Settings · Threadline';
    replace(panel, h('div', { class: 'empty-state' },
      h('h2', null, 'No such settings page'),
      h('a', { href: '/settings', 'data-link': '' }, 'Open the settings')));
    return undefined;
  }
  document.title = `${tab.label} · Settings · Threadline`;
  return loadInto(panel, tab.load, (mod) => mod.render(panel, ctx));
}

/** For an anonymous account: "Sign up to keep your chats everywhere". */
export function anonymousBanner(me) {
  if (me?.kind !== 'anonymous') return null;
  return h('aside', { class: 'card signup-banner', 'aria-label': 'Create an account' },
    h('div', null,
      h('strong', null, 'You are using Threadline without an account.'),
      h('p', { class: 'muted' }, 'Sign up to keep your chats on every device, get more credits a day, and use the models that need an account. The chats you have now are kept.')),
    h('div', { class: 'signup-banner-actions' },
      h('a', { class: 'btn btn-primary', href: '/signup', 'data-link': '' }, 'Sign up'),
      h('a', { class: 'btn', href: '/login', 'data-link': '' }, 'Log in')));
}
