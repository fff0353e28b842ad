// The admin console, `/admin[/{tab}[/{id}]]`, for accounts whose `GET /v1/me` says
// `is_admin` (everyone else gets a 403 page; the server refuses them anyway). Tabs:
//   models (catalog list, /admin/models/{id} edits one) · usage (dashboard with charts and
//   CSV) · accounts (/admin/accounts/{id}: ledger statement and grants) · mcp (servers;
//   /admin/mcp/{name} shows a server's tools) · audit (what admins changed, by whom).
// Each tab module exports `render(panel, {id, ctx}) -> cleanup?`.

import { h, replace, loadInto } from '../lib/dom.js';

export const TABS = [
  { id: 'models', label: 'Models', load: () => import('./models.js') },
  { id: 'usage', label: 'Usage', load: () => import('./usage.js') },
  { id: 'accounts', label: 'Accounts', load: () => import('./accounts.js') },
  { id: 'mcp', label: 'MCP servers', load: () => import('./mcp.js') },
  { id: 'audit', label: 'Audit', load: () => import('./audit.js') },
];

export function mount(root, params, ctx) {
  const me = ctx.me;
  if (!me?.is_admin) {
    document.title = 'Admins only · Threadline';
    replace(root, h('section', { class: 'empty-state admin-forbidden', role: 'alert' },
      h('p', { class: 'admin-forbidden-code', 'aria-hidden': 'true' }, '403'),
      h('h1', null, 'Admins only'),
      h('p', null, 'The admin console is for this server’s administrators: the accounts whose email is listed in ',
        h('code', null, 'THREADLINE_ADMIN_EMAILS'), '.'),
      me?.kind === 'anonymous'
        ? h('p', null, 'You are not signed in. ', h('a', { href: '/login', 'data-link': '' }, 'Log in'), ' with an admin account.')
        : h('p', { class: 'muted' }, `You are signed in as ${me?.email || 'an account'} without admin rights.`),
      h('p', null, h('a', { class: 'btn', href: '/', 'data-link': '' }, 'Back to chat'))));
    return undefined;
  }

  const tab = TABS.find((t) => t.id === (params.tab || 'models'));
  const nav = h('nav', { class: 'tabs admin-tabs', 'aria-label': 'Admin' },
    TABS.map((t) => h('a', {
      href: `/admin/${t.id}`, 'data-link': '', 'aria-current': t === tab ? 'page' : null,
    }, t.label)));
  const panel = h('div', { class: 'admin-panel', id: 'admin-panel' });
  replace(root, h('div', { class: 'page admin-page' },
    h('div', { class: 'admin-head' },
      h('h1', null, 'Admin'),
      h('a', { class: 'muted', href: '/settings', 'data-link': '' }, 'Your settings')),
    nav, panel));

  if (!tab) {
    document.title = 'Admin · Threadline';
    replace(panel, h('div', { class: 'empty-state' }, h('h2', null, 'No such admin page'),
      h('a', { href: '/admin', 'data-link': '' }, 'Open the admin console')));
    return undefined;
  }
  document.title = `${tab.label} · Admin · Threadline`;
  const id = params.id ? decodeURIComponent(params.id) : null;
  return loadInto(panel, tab.load, (mod) => mod.render(panel, { id, ctx }));
}
