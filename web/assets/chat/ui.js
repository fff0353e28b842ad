// Small pieces the chat modules share: icons (inline SVG built as nodes), a popup menu with
// keyboard support, confirm/prompt dialogs, clipboard copy and size/time formatting.

import { h, svg, toast } from '../lib/dom.js';

const PATHS = {
  plus: 'M12 5v14M5 12h14',
  send: 'M5 12h14M13 6l6 6-6 6',
  stop: 'M7 7h10v10H7z',
  clip: 'M21 11.5l-8.6 8.6a5 5 0 0 1-7.1-7.1l8.6-8.6a3.3 3.3 0 0 1 4.7 4.7L10 17.7a1.7 1.7 0 0 1-2.4-2.4l7.9-7.9',
  more: 'M5 12h.01M12 12h.01M19 12h.01',
  copy: 'M9 9h10v10H9zM5 15V5h10',
  check: 'M5 12l5 5L20 7',
  edit: 'M4 20h4L19 9l-4-4L4 16zM14 6l4 4',
  retry: 'M4 12a8 8 0 0 1 14-5.3M20 12a8 8 0 0 1-14 5.3M18 3v4h-4M6 21v-4h4',
  branch: 'M6 3v12M18 9a3 3 0 1 0 0-.01M6 21a3 3 0 1 0 0-.01M18 12c0 4-6 3-12 6',
  share: 'M12 3v12M7 8l5-5 5 5M5 14v6h14v-6',
  search: 'M11 18a7 7 0 1 1 0-14 7 7 0 0 1 0 14zM20 20l-4-4',
  menu: 'M4 6h16M4 12h16M4 18h16',
  x: 'M6 6l12 12M18 6L6 18',
  chevronLeft: 'M15 6l-6 6 6 6',
  chevronRight: 'M9 6l6 6-6 6',
  chevronDown: 'M6 9l6 6 6-6',
  lock: 'M6 11h12v9H6zM8 11V8a4 4 0 0 1 8 0v3',
  globe: 'M12 21a9 9 0 1 1 0-18 9 9 0 0 1 0 18zM3 12h18M12 3c3 3.5 3 14.5 0 18M12 3c-3 3.5-3 14.5 0 18',
  flask: 'M9 3h6M10 3v6L4 19a1 1 0 0 0 1 2h14a1 1 0 0 0 1-2l-6-10V3',
  brain: 'M9 4a3 3 0 0 0-3 3 3 3 0 0 0-2 5 3 3 0 0 0 2 5 3 3 0 0 0 6 0V4zM15 4a3 3 0 0 1 3 3 3 3 0 0 1 2 5 3 3 0 0 1-2 5 3 3 0 0 1-6 0',
  wrench: 'M14 6a4 4 0 0 0 5 5l-8 8a2 2 0 0 1-3-3l8-8a4 4 0 0 0-2-2z',
  eye: 'M2 12s4-7 10-7 10 7 10 7-4 7-10 7S2 12 2 12zM12 15a3 3 0 1 0 0-6 3 3 0 0 0 0 6z',
  file: 'M6 3h8l4 4v14H6zM14 3v4h4',
  pin: 'M9 3h6l-1 6 4 4H6l4-4zM12 13v8',
  archive: 'M3 5h18v4H3zM5 9v10h14V9M10 13h4',
  trash: 'M4 7h16M9 7V4h6v3M6 7l1 13h10l1-13',
};

/** An icon (decorative: hidden from assistive technology). */
export function icon(name, size = 18) {
  return svg('svg', { viewBox: '0 0 24 24', width: size, height: size, fill: 'none', stroke: 'currentColor',
    'stroke-width': 2, 'stroke-linecap': 'round', 'stroke-linejoin': 'round', 'aria-hidden': 'true', class: 'icon' },
  svg('path', { d: PATHS[name] || PATHS.more }));
}

/** Copies text to the clipboard and says so. */
export async function copyText(text, what = 'Copied') {
  try {
    await navigator.clipboard.writeText(text);
    toast(what);
    return true;
  } catch {
    toast('Could not copy', 'error');
    return false;
  }
}

/** 1.2 MB, 340 KB, 12 B. */
export function formatSize(n) {
  if (n == null) return '';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${Math.round(n / 1024)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

/** "at 14:00" today, "tomorrow at 00:00", or a date and time. */
export function formatResetTime(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  const now = new Date();
  const time = d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
  const sameDay = d.toDateString() === now.toDateString();
  const tomorrow = new Date(now.getTime() + 86400000).toDateString() === d.toDateString();
  if (sameDay) return `today at ${time}`;
  if (tomorrow) return `tomorrow at ${time}`;
  return `${d.toLocaleDateString()} ${time}`;
}

let openMenu = null;

/** Closes the open popup menu, if any. */
export function closeMenu() {
  if (!openMenu) return;
  const { el, anchor, cleanup } = openMenu;
  openMenu = null;
  cleanup();
  el.remove();
  anchor.setAttribute('aria-expanded', 'false');
}

/**
 * Opens a menu under `anchor`: items are `{label, onSelect, danger?}` (falsy items skipped).
 * Arrow keys move, Enter/Space select, Escape closes and gives focus back.
 */
export function showMenu(anchor, items, { label = 'Actions' } = {}) {
  if (openMenu?.anchor === anchor) { closeMenu(); return; }
  closeMenu();
  const buttons = items.filter(Boolean).map((item) => h('button', {
    type: 'button', role: 'menuitem', class: ['menu-item', item.danger && 'danger'], tabindex: '-1',
    onclick: (e) => { e.stopPropagation(); closeMenu(); item.onSelect(); },
  }, item.icon ? icon(item.icon, 16) : null, item.label));
  const el = h('div', { class: 'popup-menu', role: 'menu', 'aria-label': label }, buttons);
  document.body.append(el);
  const r = anchor.getBoundingClientRect();
  const w = el.offsetWidth;
  const hgt = el.offsetHeight;
  let left = Math.min(r.right - w, window.innerWidth - w - 8);
  left = Math.max(8, left);
  let top = r.bottom + 4;
  if (top + hgt > window.innerHeight - 8) top = Math.max(8, r.top - hgt - 4);
  el.style.left = `${left}px`;
  el.style.top = `${top}px`;
  anchor.setAttribute('aria-expanded', 'true');
  const focusAt = (i) => buttons[(i + buttons.length) % buttons.length]?.focus();
  const onKey = (e) => {
    const i = buttons.indexOf(document.activeElement);
    if (e.key === 'ArrowDown') { e.preventDefault(); focusAt(i + 1); }
    else if (e.key === 'ArrowUp') { e.preventDefault(); focusAt(i - 1); }
    else if (e.key === 'Home') { e.preventDefault(); focusAt(0); }
    else if (e.key === 'End') { e.preventDefault(); focusAt(buttons.length - 1); }
    else if (e.key === 'Escape') { e.preventDefault(); closeMenu(); anchor.focus(); }
    else if (e.key === 'Tab') closeMenu();
  };
  const onDown = (e) => { if (!el.contains(e.target) && !anchor.contains(e.target)) closeMenu(); };
  el.addEventListener('keydown', onKey);
  setTimeout(() => document.addEventListener('pointerdown', onDown), 0);
  const onScroll = (e) => { if (!el.contains(e.target)) closeMenu(); };
  window.addEventListener('resize', closeMenu);
  document.addEventListener('scroll', onScroll, true);
  openMenu = {
    el, anchor,
    cleanup: () => {
      document.removeEventListener('pointerdown', onDown);
      window.removeEventListener('resize', closeMenu);
      document.removeEventListener('scroll', onScroll, true);
    },
  };
  focusAt(0);
}

/** A modal dialog; resolves with the value `onSubmit` returns, or null when cancelled. */
function modal(title, body, actions) {
  return new Promise((resolve) => {
    const dialog = h('dialog', { class: 'chat-dialog', 'aria-label': title });
    let result = null;
    const form = h('form', { method: 'dialog' },
      h('h2', null, title),
      body,
      h('div', { class: 'dialog-actions' }, actions.map((a) => h('button', {
        type: a.submit ? 'submit' : 'button', class: ['btn', a.primary && 'btn-primary', a.danger && 'btn-danger'],
        onclick: a.submit ? null : () => dialog.close(),
      }, a.label))));
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      const submit = actions.find((a) => a.submit);
      result = submit.value ? submit.value() : true;
      if (result === undefined) return;
      dialog.close();
    });
    dialog.append(form);
    dialog.addEventListener('close', () => { dialog.remove(); resolve(result); });
    document.body.append(dialog);
    dialog.showModal();
  });
}

/** "Delete this thread?" — resolves true or null. */
export function confirmDialog(title, text, { confirm = 'OK', danger = false } = {}) {
  return modal(title, h('p', null, text), [
    { label: 'Cancel' },
    { label: confirm, submit: true, primary: !danger, danger },
  ]);
}

/** Asks for one line of text; resolves with it (trimmed) or null. */
export function promptDialog(title, { label, value = '', confirm = 'Save', maxLength = 200 } = {}) {
  const input = h('input', { type: 'text', value, maxlength: String(maxLength), required: true, 'aria-label': label || title });
  setTimeout(() => { input.focus(); input.select(); }, 0);
  return modal(title, h('label', { class: 'field' }, label ? h('span', null, label) : null, input), [
    { label: 'Cancel' },
    { label: confirm, submit: true, primary: true, value: () => input.value.trim() || undefined },
  ]);
}

/** A dialog with arbitrary content and a Close button. Returns the dialog element. */
export function infoDialog(title, ...content) {
  const dialog = h('dialog', { class: 'chat-dialog', 'aria-label': title },
    h('h2', null, title), ...content,
    h('div', { class: 'dialog-actions' }, h('button', { type: 'button', class: 'btn', onclick: () => dialog.close() }, 'Close')));
  dialog.addEventListener('close', () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  return dialog;
}
