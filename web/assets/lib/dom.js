// Building DOM without HTML strings. Nothing in the app assigns innerHTML: text from messages,
// titles or the server always becomes text nodes, and the page's Content-Security-Policy
// (`require-trusted-types-for 'script'`) makes any HTML-string sink throw.

/**
 * h('button', {class: 'x', onclick: f, 'aria-label': 'Stop'}, 'Stop', child, [more])
 * Props: `class`, `dataset` (object), `style` (object), `on<event>` (listener),
 * booleans (`disabled`, `hidden`, ...) and anything else as an attribute. Children: strings
 * (text nodes), nodes, arrays, and null/undefined/false (skipped).
 */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  if (props) setProps(el, props);
  append(el, children);
  return el;
}

/** The same for SVG elements (charts, icons). */
export function svg(tag, props, ...children) {
  const el = document.createElementNS('http://www.w3.org/2000/svg', tag);
  if (props) {
    for (const [k, v] of Object.entries(props)) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, String(v));
    }
  }
  append(el, children);
  return el;
}

function setProps(el, props) {
  for (const [k, v] of Object.entries(props)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') el.className = Array.isArray(v) ? v.filter(Boolean).join(' ') : v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'style') Object.assign(el.style, v);
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'value' || k === 'checked' || k === 'selected') el[k] = v;
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
}

/** Appends children (see `h`) to a node. */
export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Replaces a node's children. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** A short-lived message at the bottom of the page (errors, confirmations). */
/**
 * Loads a page module (`load()` is a dynamic import) and hands it to `render(mod)`, which may
 * return a cleanup. Shows an error in `panel` when the module cannot load. Returns the
 * route's cleanup: it also stops a module that arrives after the route was left.
 */
export function loadInto(panel, load, render) {
  let cleanup = null;
  let gone = false;
  load().then((mod) => {
    if (!gone) cleanup = render(mod) || null;
  }).catch((e) => {
    console.error(e);
    replace(panel, h('p', { class: 'error-text', role: 'alert' }, `This page could not load: ${e.message}`));
  });
  return () => {
    gone = true;
    if (cleanup) cleanup();
  };
}

export function toast(text, kind = 'info') {
  const box = document.getElementById('toasts');
  if (!box) return;
  const item = h('div', { class: ['toast', `toast-${kind}`] }, text);
  box.append(item);
  setTimeout(() => item.remove(), kind === 'error' ? 8000 : 4000);
}

/** "3 minutes ago", "yesterday", or a date. */
export function relativeTime(iso) {
  const then = new Date(iso).getTime();
  const s = Math.round((Date.now() - then) / 1000);
  if (s < 45) return 'just now';
  const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });
  if (s < 3600) return rtf.format(-Math.round(s / 60), 'minute');
  if (s < 86400) return rtf.format(-Math.round(s / 3600), 'hour');
  if (s < 7 * 86400) return rtf.format(-Math.round(s / 86400), 'day');
  return new Date(iso).toLocaleDateString();
}
