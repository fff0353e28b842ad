// The thread sidebar, mounted once into `nav#sidebar` by app.js: "New chat", the search box
// (`aria-label="Search threads"`, hits with the matched terms in <mark>), the thread list
// (Pinned, then the rest by newest activity in day groups, then a collapsible Archived
// section; keyset pages loaded on scroll), a menu per thread (rename, pin, archive, share,
// delete), live updates from the feed, and a footer with the account and the connection
// status. On phones a button (`button.sidebar-toggle`, fixed top-left) toggles
// `body.sidebar-open`.
//
// Each row is `li.thread-row > a.thread-link[href="/t/{id}"]` (`aria-current="page"` for the
// open thread, `.streaming-dot` while a reply streams) and `button.thread-menu-button`.

import { del, get, patch } from '../lib/api.js';
import { h, replace, toast } from '../lib/dom.js';
import { onFeed, onStatus } from '../lib/feed.js';
import { loadPrefs } from './models.js';
import { openShareDialog } from './share-dialog.js';
import { confirmDialog, icon, promptDialog, showMenu } from './ui.js';

const PAGE = 50;

export function mountSidebar(el, ctx) {
  const threads = new Map(); // id -> thread
  const streaming = new Set();
  // Generations the feed said have finished: a thread fetched while its reply streamed may
  // answer after `reply.finished`, and must not light the dot again.
  const finished = new Set();
  let cursor = null; // next page of the unpinned list
  let loading = false;
  let archivedOpen = false;
  let archivedLoaded = false;
  let archivedCursor = null;
  let generation = 0; // bumps when the account changes

  // ---- structure ----
  const newChat = h('a', { class: 'btn new-chat', href: '/', 'data-link': '', onclick: (e) => {
    if (location.pathname === '/') { e.preventDefault(); ctx.emit('chat:new'); }
    closeDrawer();
  } }, icon('plus', 16), 'New chat');
  const brand = h('a', { class: 'brand', href: '/', 'aria-label': 'Threadline home' },
    h('img', { src: '/assets/icon.svg', alt: '', width: 22, height: 22 }), h('span', null, 'Threadline'));
  const search = h('input', { type: 'search', class: 'sidebar-search-input', 'aria-label': 'Search threads', placeholder: 'Search your chats…', autocomplete: 'off' });
  const results = h('div', { class: 'search-results', hidden: true, 'aria-live': 'polite' });
  const pinnedList = h('ul', { class: 'thread-list', 'aria-label': 'Pinned threads' });
  const pinnedSection = h('section', { class: 'thread-section', hidden: true }, h('h2', { class: 'thread-section-title' }, icon('pin', 13), 'Pinned'), pinnedList);
  const recentBox = h('div', { class: 'recent-groups' });
  const sentinel = h('div', { class: 'list-sentinel', 'aria-hidden': 'true' });
  const moreButton = h('button', { type: 'button', class: 'btn btn-ghost load-more', hidden: true, onclick: () => loadMore() }, 'Load more');
  const emptyNote = h('p', { class: 'muted sidebar-empty', hidden: true }, 'No chats yet. Start one!');
  const recentSection = h('section', { class: 'thread-section' }, recentBox, emptyNote, sentinel, moreButton);
  const archivedToggle = h('button', { type: 'button', class: 'archived-toggle', 'aria-expanded': 'false', 'aria-controls': 'archived-threads' },
    icon('chevronRight', 14), icon('archive', 14), 'Archived');
  const archivedList = h('ul', { id: 'archived-threads', class: 'thread-list', hidden: true, 'aria-label': 'Archived threads' });
  const archivedMore = h('button', { type: 'button', class: 'btn btn-ghost load-more', hidden: true, onclick: () => loadArchived(true) }, 'Load more');
  const archivedEmpty = h('p', { class: 'muted sidebar-empty', hidden: true }, 'Nothing archived.');
  const archivedSection = h('section', { class: 'thread-section archived' }, archivedToggle, archivedList, archivedEmpty, archivedMore);
  const lists = h('div', { class: 'thread-lists' }, pinnedSection, recentSection, archivedSection);
  const scroll = h('div', { class: 'sidebar-scroll' }, results, lists);
  const account = h('div', { class: 'sidebar-account' });
  const dot = h('span', { class: 'conn-dot', role: 'status', 'data-status': 'connecting', 'aria-label': 'Connection: connecting', title: 'Connecting…' });
  const footer = h('div', { class: 'sidebar-foot' }, account, dot);
  replace(el,
    h('div', { class: 'sidebar-head' }, brand, newChat),
    h('div', { class: 'sidebar-search' }, icon('search', 15), search),
    scroll, footer);

  // The phone drawer's button lives outside the sidebar (which is off screen there).
  const toggle = h('button', { type: 'button', class: 'sidebar-toggle', 'aria-label': 'Open sidebar', 'aria-expanded': 'false', 'aria-controls': 'sidebar' }, icon('menu', 20));
  document.body.append(toggle);
  function setDrawer(open) {
    document.body.classList.toggle('sidebar-open', open);
    toggle.setAttribute('aria-expanded', String(open));
    toggle.setAttribute('aria-label', open ? 'Close sidebar' : 'Open sidebar');
  }
  function closeDrawer() { if (document.body.classList.contains('sidebar-open')) setDrawer(false); }
  toggle.addEventListener('click', () => setDrawer(!document.body.classList.contains('sidebar-open')));
  document.addEventListener('pointerdown', (e) => {
    if (!document.body.classList.contains('sidebar-open')) return;
    if (el.contains(e.target) || toggle.contains(e.target) || e.target.closest?.('.popup-menu, dialog')) return;
    setDrawer(false);
  });
  document.addEventListener('keydown', (e) => { if (e.key === 'Escape' && document.body.classList.contains('sidebar-open') && !document.querySelector('dialog[open], .popup-menu')) { setDrawer(false); toggle.focus(); } });
  el.addEventListener('click', (e) => { if (e.target.closest('a[href]')) closeDrawer(); });

  // ---- rows ----
  const currentId = () => (ctx.route?.name === 'thread' ? ctx.route.params.id : null);
  const titleOf = (t) => t.title || 'New chat';

  function row(t) {
    const current = t.id === currentId();
    const link = h('a', {
      class: 'thread-link', href: `/t/${t.id}`, 'data-thread-id': t.id, 'aria-current': current ? 'page' : null, title: titleOf(t),
    }, h('span', { class: 'thread-title' }, titleOf(t)),
    streaming.has(t.id) ? h('span', { class: 'streaming-dot', role: 'img', 'aria-label': 'Replying' }) : null);
    const menu = h('button', { type: 'button', class: 'btn-icon thread-menu-button', 'aria-label': `Actions for ${titleOf(t)}`, 'aria-haspopup': 'menu', 'aria-expanded': 'false' }, icon('more', 16));
    menu.addEventListener('click', (e) => { e.stopPropagation(); openThreadMenu(menu, t); });
    return h('li', { class: ['thread-row', current && 'current'], dataset: { threadId: t.id } }, link, menu);
  }

  function dayGroup(iso) {
    const d = new Date(iso);
    const start = new Date(); start.setHours(0, 0, 0, 0);
    const day = 86400000;
    if (d >= start) return 'Today';
    if (d >= start - day) return 'Yesterday';
    if (d >= start - 7 * day) return 'Previous 7 days';
    if (d >= start - 30 * day) return 'Previous 30 days';
    return 'Older';
  }

  const byActivity = (a, b) => (b.last_activity_at || '').localeCompare(a.last_activity_at || '');

  function render() {
    const all = [...threads.values()];
    const pinned = all.filter((t) => t.pinned && !t.archived).sort(byActivity);
    const recent = all.filter((t) => !t.pinned && !t.archived).sort(byActivity);
    const archived = all.filter((t) => t.archived).sort(byActivity);
    pinnedList.replaceChildren(...pinned.map(row));
    pinnedSection.hidden = pinned.length === 0;
    const groups = new Map();
    for (const t of recent) {
      const g = dayGroup(t.last_activity_at);
      if (!groups.has(g)) groups.set(g, []);
      groups.get(g).push(t);
    }
    recentBox.replaceChildren(...[...groups].map(([name, items]) => h('div', { class: 'thread-group' },
      h('h2', { class: 'thread-section-title' }, name),
      h('ul', { class: 'thread-list', 'aria-label': name }, items.map(row)))));
    emptyNote.hidden = recent.length > 0 || pinned.length > 0 || loading || !!cursor;
    moreButton.hidden = !cursor;
    archivedList.replaceChildren(...archived.map(row));
    archivedList.hidden = !archivedOpen;
    archivedEmpty.hidden = !archivedOpen || !archivedLoaded || archived.length > 0;
    archivedMore.hidden = !archivedOpen || !archivedCursor;
  }

  function markCurrent() {
    const id = currentId();
    for (const a of el.querySelectorAll('a.thread-link')) {
      const on = a.dataset.threadId === id;
      if (on) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
      a.closest('.thread-row')?.classList.toggle('current', on);
    }
  }

  function merge(list) {
    for (const t of list) {
      const { messages: _m, ...meta } = t;
      const known = threads.get(t.id);
      threads.set(t.id, { ...known, ...meta, title: meta.title ?? known?.title ?? null });
      if (meta.active_generation_id && !finished.has(meta.active_generation_id)) streaming.add(t.id);
    }
  }

  // ---- loading ----
  async function loadAll() {
    const gen = ++generation;
    loading = true;
    try {
      const [pinned, first] = await Promise.all([
        get('/v1/threads', { pinned: true, limit: 200 }),
        get('/v1/threads', { pinned: false, limit: PAGE }),
      ]);
      if (gen !== generation) return;
      threads.clear();
      streaming.clear();
      merge(pinned.data);
      merge(first.data);
      cursor = first.next_cursor;
      archivedLoaded = false;
      archivedCursor = null;
      if (archivedOpen) loadArchived();
    } catch (e) {
      if (gen === generation) toast(`Could not load your chats: ${e.message}`, 'error');
    } finally {
      if (gen === generation) { loading = false; render(); }
    }
  }

  async function loadMore() {
    if (!cursor || loading) return;
    loading = true;
    const gen = generation;
    try {
      const page = await get('/v1/threads', { pinned: false, limit: PAGE, cursor });
      if (gen !== generation) return;
      merge(page.data);
      cursor = page.next_cursor;
    } catch (e) {
      toast(e.message, 'error');
    } finally {
      loading = false;
      render();
    }
  }

  async function loadArchived(more = false) {
    const gen = generation;
    try {
      const page = await get('/v1/threads', { archived: true, limit: PAGE, cursor: more ? archivedCursor : undefined });
      if (gen !== generation) return;
      merge(page.data);
      archivedCursor = page.next_cursor;
      archivedLoaded = true;
      render();
    } catch (e) {
      toast(e.message, 'error');
    }
  }

  archivedToggle.addEventListener('click', () => {
    archivedOpen = !archivedOpen;
    archivedToggle.setAttribute('aria-expanded', String(archivedOpen));
    archivedSection.classList.toggle('open', archivedOpen);
    if (archivedOpen && !archivedLoaded) loadArchived();
    render();
  });

  new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting)) loadMore();
  }, { root: scroll, rootMargin: '200px' }).observe(sentinel);

  async function fetchThread(id) {
    try {
      const t = await get(`/v1/threads/${id}`);
      merge([t]);
      render();
    } catch { /* gone, or not ours */ }
  }

  // ---- actions ----
  async function change(t, body) {
    try {
      const next = await patch(`/v1/threads/${t.id}`, body);
      merge([next]);
      render();
    } catch (e) {
      toast(e.message, 'error');
    }
  }

  function openThreadMenu(button, t) {
    t = threads.get(t.id) || t;
    showMenu(button, [
      { label: 'Rename', icon: 'edit', onSelect: async () => {
        const title = await promptDialog('Rename chat', { label: 'Title', value: t.title || '' });
        if (title) change(t, { title });
      } },
      { label: t.pinned ? 'Unpin' : 'Pin', icon: 'pin', onSelect: () => change(t, { pinned: !t.pinned }) },
      { label: t.archived ? 'Unarchive' : 'Archive', icon: 'archive', onSelect: () => change(t, { archived: !t.archived }) },
      { label: 'Share', icon: 'share', onSelect: () => openShareDialog(t.id) },
      { label: 'Delete', icon: 'trash', danger: true, onSelect: async () => {
        const ok = await confirmDialog('Delete this chat?', `“${titleOf(t)}” and all its messages will be deleted. This cannot be undone.`, { confirm: 'Delete', danger: true });
        if (!ok) return;
        try {
          await del(`/v1/threads/${t.id}`);
          threads.delete(t.id);
          render();
          if (currentId() === t.id) ctx.navigate('/');
          toast('Chat deleted');
        } catch (e) { toast(e.message, 'error'); }
      } },
    ], { label: `Actions for ${titleOf(t)}` });
  }

  // ---- search ----
  let searchTimer = null;
  let searchSeq = 0;

  function highlighted(snippet, ranges) {
    const chars = Array.from(snippet || ''); // ranges count Unicode characters
    const out = [];
    let at = 0;
    for (const [s, e] of [...(ranges || [])].sort((a, b) => a[0] - b[0])) {
      if (s < at) continue;
      if (s > at) out.push(chars.slice(at, s).join(''));
      out.push(h('mark', null, chars.slice(s, e).join('')));
      at = e;
    }
    if (at < chars.length) out.push(chars.slice(at).join(''));
    return out;
  }

  async function runSearch(q) {
    const seq = ++searchSeq;
    try {
      const page = await get('/v1/search', { q, limit: 20 });
      if (seq !== searchSeq) return;
      const hits = page.data;
      replace(results,
        h('h2', { class: 'thread-section-title' }, hits.length ? `Results for “${q}”` : `No chats match “${q}”`),
        h('ul', { class: 'search-list' }, hits.map((hit) => h('li', null,
          h('a', {
            class: 'search-hit', href: `/t/${hit.thread_id}${hit.message_id ? `?m=${encodeURIComponent(hit.message_id)}` : ''}`,
            'data-thread-id': hit.thread_id,
          },
          h('span', { class: 'search-hit-title' }, hit.message_id ? (hit.thread_title || 'New chat') : highlighted(hit.snippet, hit.highlights)),
          hit.message_id ? h('span', { class: 'search-hit-snippet' }, highlighted(hit.snippet, hit.highlights)) : null)))));
    } catch (e) {
      if (seq === searchSeq) replace(results, h('p', { class: 'error-text sidebar-empty' }, e.message));
    }
  }

  search.addEventListener('input', () => {
    clearTimeout(searchTimer);
    const q = search.value.trim();
    if (!q) { searchSeq++; results.hidden = true; lists.hidden = false; return; }
    results.hidden = false;
    lists.hidden = true;
    if (!results.firstChild) replace(results, h('p', { class: 'muted sidebar-empty' }, 'Searching…'));
    searchTimer = setTimeout(() => runSearch(q.slice(0, 200)), 250);
  });
  search.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && search.value) { e.preventDefault(); search.value = ''; search.dispatchEvent(new Event('input')); }
    if (e.key === 'ArrowDown') { const first = results.querySelector('a'); if (first && !results.hidden) { e.preventDefault(); first.focus(); } }
  });
  results.addEventListener('keydown', (e) => {
    const links = [...results.querySelectorAll('a')];
    const i = links.indexOf(document.activeElement);
    if (i < 0) return;
    if (e.key === 'ArrowDown') { e.preventDefault(); links[Math.min(i + 1, links.length - 1)].focus(); }
    if (e.key === 'ArrowUp') { e.preventDefault(); (i === 0 ? search : links[i - 1]).focus(); }
  });

  // ---- footer ----
  async function paintAccount() {
    const me = ctx.me;
    if (!me) { account.replaceChildren(); return; }
    const prefs = await loadPrefs().catch(() => ({}));
    const anonymous = me.kind === 'anonymous';
    const name = prefs?.nickname || me.name || me.email || 'Anonymous';
    const initial = (name.trim()[0] || '?').toUpperCase();
    replace(account,
      h('a', { class: 'account-link', href: '/settings', title: 'Settings' },
        me.image_url ? h('img', { class: 'avatar', src: me.image_url, alt: '' }) : h('span', { class: 'avatar', 'aria-hidden': 'true' }, initial),
        h('span', { class: 'account-text' },
          h('span', { class: 'account-name' }, name),
          h('span', { class: 'account-tier muted' }, anonymous ? 'Settings' : `${me.tier === 'pro' ? 'Pro' : 'Free'} · Settings`))),
      anonymous ? h('a', { class: 'btn btn-primary btn-small', href: '/signup' }, 'Sign up') : null,
      me.is_admin ? h('a', { class: 'btn btn-small', href: '/admin' }, 'Admin') : null);
  }

  onStatus((status) => {
    dot.dataset.status = status;
    const label = status === 'online' ? 'online' : status === 'offline' ? 'offline' : 'connecting';
    dot.setAttribute('aria-label', `Connection: ${label}`);
    dot.title = status === 'online' ? 'Live updates on' : status === 'offline' ? 'Offline' : 'Connecting…';
  });

  // ---- live updates ----
  onFeed((item) => {
    const id = item.thread_id;
    switch (item.type) {
      case 'thread.created':
        if (!threads.has(id)) {
          threads.set(id, { id, title: item.title ?? null, created_at: item.at, last_activity_at: item.at, pinned: false, archived: false });
          fetchThread(id);
        }
        render();
        break;
      case 'thread.titled':
        if (threads.has(id)) { threads.get(id).title = item.title; render(); } else fetchThread(id);
        break;
      case 'thread.updated': {
        const t = threads.get(id);
        if (!t) { if ('archived' in item || 'pinned' in item) fetchThread(id); break; }
        if ('archived' in item) t.archived = item.archived;
        if ('pinned' in item) t.pinned = item.pinned;
        render();
        break;
      }
      case 'thread.deleted':
        threads.delete(id);
        streaming.delete(id);
        render();
        break;
      case 'message.posted':
      case 'reply.started': {
        if (item.type === 'reply.started') streaming.add(id);
        const t = threads.get(id);
        if (t) { if (item.at) t.last_activity_at = item.at; render(); } else fetchThread(id);
        break;
      }
      case 'reply.finished':
        if (item.generation_id) finished.add(item.generation_id);
        streaming.delete(id);
        render();
        break;
      case 'preferences.changed':
        setTimeout(paintAccount, 50);
        break;
      default:
    }
  });

  ctx.on('route', () => { markCurrent(); closeDrawer(); });
  let accountId = ctx.me?.id;
  ctx.on('me', (me) => {
    paintAccount();
    if (me?.id !== accountId) { accountId = me?.id; loadAll(); }
  });

  paintAccount();
  loadAll();
}
