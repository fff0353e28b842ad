// The web app's entry: the session, the router and the shell (sidebar + main view).
//
// Each view is an ES module loaded on first use that exports
//   mount(root: HTMLElement, params: object, ctx) -> (() => void) | undefined
// and returns its clean-up. `ctx` is shared by every view:
//   ctx.me            the account (`GET /v1/me`), kept fresh by ctx.refreshMe()
//   ctx.navigate(p)   client-side navigation (pushState); ctx.navigate(p, {replace: true})
//   ctx.route         the current {path, name, params}
//   ctx.on(name, fn)  app-wide events ('me', 'route', 'usage'); ctx.emit(name, detail)

import { ensureSession, get } from './lib/api.js';
import { connectFeed } from './lib/feed.js';
import { h, replace, toast } from './lib/dom.js';

const ROUTES = [
  { name: 'new-chat', pattern: /^\/$/, load: () => import('./chat/view.js') },
  { name: 'thread', pattern: /^\/t\/(?<id>[A-Za-z0-9_-]{1,64})$/, load: () => import('./chat/view.js') },
  { name: 'share', pattern: /^\/s\/(?<id>[A-Za-z0-9_-]{1,64})$/, load: () => import('./chat/share.js'), public: true },
  { name: 'sign-in', pattern: /^\/(?<mode>login|signup)$/, load: () => import('./settings/auth.js') },
  { name: 'settings', pattern: /^\/settings(?:\/(?<tab>[a-z-]+))?$/, load: () => import('./settings/view.js') },
  { name: 'admin', pattern: /^\/admin(?:\/(?<tab>[a-z-]+))?(?:\/(?<id>[A-Za-z0-9_.:@-]+))?$/, load: () => import('./admin/view.js') },
];

const bus = new EventTarget();
const ctx = {
  me: null,
  route: null,
  navigate,
  refreshMe,
  on(name, fn) {
    const wrapped = (e) => fn(e.detail);
    bus.addEventListener(name, wrapped);
    return () => bus.removeEventListener(name, wrapped);
  },
  emit(name, detail) {
    bus.dispatchEvent(new CustomEvent(name, { detail }));
  },
};

let unmount = null;
let sidebarStarted = false;

async function refreshMe() {
  ctx.me = await get('/v1/me');
  ctx.emit('me', ctx.me);
  return ctx.me;
}

function match(path) {
  for (const route of ROUTES) {
    const m = route.pattern.exec(path);
    if (m) return { route, params: { ...(m.groups || {}) } };
  }
  return null;
}

function navigate(path, { replace: replaceState = false } = {}) {
  if (path === location.pathname + location.search) return;
  if (replaceState) history.replaceState(null, '', path);
  else history.pushState(null, '', path);
  render();
}

async function startSession() {
  if (ctx.me) return;
  ctx.me = await ensureSession();
  connectFeed();
  ctx.emit('me', ctx.me);
}

async function render() {
  const main = document.getElementById('main');
  const found = match(location.pathname);
  if (unmount) { try { unmount(); } catch (e) { console.error(e); } unmount = null; }
  if (!found) {
    replace(main, h('section', { class: 'empty-state' },
      h('h1', null, 'Not found'),
      h('p', null, 'There is nothing at this address. '),
      h('a', { href: '/', 'data-link': '' }, 'Start a new chat')));
    return;
  }
  const { route, params } = found;
  ctx.route = { path: location.pathname, name: route.name, params };
  document.body.dataset.route = route.name;
  try {
    if (!route.public) {
      await startSession();
      if (!sidebarStarted) {
        sidebarStarted = true;
        const { mountSidebar } = await import('./chat/sidebar.js');
        mountSidebar(document.getElementById('sidebar'), ctx);
      }
    }
    const view = await route.load();
    replace(main);
    unmount = view.mount(main, params, ctx) || null;
    ctx.emit('route', ctx.route);
  } catch (e) {
    console.error(e);
    replace(main, h('section', { class: 'empty-state', role: 'alert' },
      h('h1', null, 'Something went wrong'),
      h('p', null, e.message || String(e)),
      h('button', { class: 'btn', onclick: () => render() }, 'Try again')));
  }
}

// Same-origin links marked `data-link` (or any plain left click on an in-app link) navigate
// without a page load.
document.addEventListener('click', (e) => {
  const a = e.target.closest?.('a[href]');
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  if (a.target || a.hasAttribute('download')) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || url.pathname.startsWith('/v1/')) return;
  e.preventDefault();
  navigate(url.pathname + url.search);
});

window.addEventListener('popstate', render);
window.addEventListener('unhandledrejection', (e) => {
  toast(e.reason?.message || 'Something went wrong', 'error');
});

// Theme: the stored preference wins over the system's (set by the settings page).
const theme = localStorage.getItem('threadline.theme');
if (theme === 'light' || theme === 'dark') document.documentElement.dataset.theme = theme;

render();

export { ctx };
