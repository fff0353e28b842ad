// Small building blocks shared by the account pages and the admin console: labelled fields
// that show the server's field errors (problem+json `errors`), a confirm dialog, a busy
// button, and the number, money and time formats both use.

import { h, append, relativeTime } from '../lib/dom.js';

let uid = 0;
/** A fresh element id (for label/description wiring). */
export function nextId(prefix = 'f') {
  uid += 1;
  return `${prefix}-${uid}`;
}

/**
 * A labelled field: `<label class=field><span>Label</span>input<small hint/><p error/></label>`.
 * `control` is an input/select/textarea whose `name` is the API field name.
 */
export function field(label, control, hint) {
  const id = control.id || nextId('in');
  control.id = id;
  const hintEl = hint ? h('small', { class: 'field-hint muted', id: `${id}-hint` }, hint) : null;
  const errorEl = h('p', { class: 'field-error', id: `${id}-error`, hidden: true });
  control.setAttribute('aria-describedby', [hintEl && hintEl.id, errorEl.id].filter(Boolean).join(' '));
  return h('div', { class: 'field' },
    h('label', { for: id }, label),
    control, hintEl, errorEl);
}

/** A group of checkboxes or radios with a legend. */
export function fieldset(legend, ...children) {
  return h('fieldset', { class: 'fieldset' }, h('legend', null, legend), ...children);
}

/** The form-level error box (role=alert) of a form, created on first use. */
function formErrorBox(form) {
  let box = form.querySelector(':scope > .form-error');
  if (!box) {
    box = h('p', { class: 'form-error', role: 'alert', hidden: true });
    form.prepend(box);
  }
  return box;
}

/** Clears every field and form error of a form. */
export function clearErrors(form) {
  for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
  for (const el of form.querySelectorAll('.field-error')) { el.hidden = true; el.textContent = ''; }
  const box = form.querySelector(':scope > .form-error');
  if (box) { box.hidden = true; box.replaceChildren(); }
}

/** Puts a message under the named control (or on the form when there is none). */
export function setFieldError(form, name, message) {
  const control = form.querySelector(`[name="${CSS.escape(name)}"]`);
  const errorEl = control && form.querySelector(`#${CSS.escape(control.id)}-error`);
  if (!errorEl) { setFormError(form, message); return; }
  control.setAttribute('aria-invalid', 'true');
  errorEl.textContent = message;
  errorEl.hidden = false;
}

/** Shows a message (text or nodes) at the top of the form. */
export function setFormError(form, ...message) {
  const box = formErrorBox(form);
  box.replaceChildren();
  append(box, message);
  box.hidden = false;
}

/**
 * Shows an ApiError on a form: `validation_failed` field by field (`aliases` maps API field
 * names to control names), anything else at the top. Returns true when it showed something.
 */
export function showApiError(form, err, aliases = {}) {
  clearErrors(form);
  if (err?.code === 'validation_failed' && err.problem?.errors) {
    for (const [key, messages] of Object.entries(err.problem.errors)) {
      const text = capitalise((messages || []).join('; ') || 'is not valid');
      setFieldError(form, aliases[key] || key, text);
    }
    const first = form.querySelector('[aria-invalid=true]');
    if (first) first.focus();
    return true;
  }
  setFormError(form, describeError(err));
  return true;
}

/** A sentence for an ApiError a person can act on. */
export function describeError(err) {
  if (!err) return 'Something went wrong.';
  if (err.code === 'rate_limited' || err.code === 'quota_exceeded') {
    const wait = retryText(err.retryAfter);
    return `${capitalise(err.detail || 'Too many attempts')}.${wait ? ` Try again ${wait}.` : ''}`;
  }
  if (err.code === 'forbidden') return 'Only admins may do this.';
  if (err.code === 'csrf_failed') return 'The page is out of date with your session. Reload it and try again.';
  if (err.code === 'unavailable') return 'The server is busy. Try again in a moment.';
  if (err.status === undefined) return err.message || 'The server could not be reached.';
  return capitalise(err.detail || err.message || `The server answered ${err.status}.`);
}

/** "in 3 minutes" for a Retry-After in seconds. */
export function retryText(seconds) {
  const s = Number(seconds);
  if (!Number.isFinite(s) || s <= 0) return '';
  const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });
  if (s < 90) return rtf.format(Math.ceil(s), 'second');
  if (s < 5400) return rtf.format(Math.ceil(s / 60), 'minute');
  return rtf.format(Math.round(s / 3600), 'hour');
}

export function capitalise(text) {
  const s = String(text || '');
  return s ? s[0].toUpperCase() + s.slice(1) : s;
}

/**
 * Runs `fn` with the button disabled and `aria-busy`; the label becomes `busyLabel` meanwhile.
 * Returns fn's result (errors propagate).
 */
export async function busy(button, fn, busyLabel) {
  const label = button.textContent;
  button.disabled = true;
  button.setAttribute('aria-busy', 'true');
  if (busyLabel) button.textContent = busyLabel;
  try {
    return await fn();
  } finally {
    button.disabled = false;
    button.removeAttribute('aria-busy');
    if (busyLabel) button.textContent = label;
  }
}

/** A modal confirm dialog; resolves true when confirmed. */
export function confirmDialog({ title, body, confirm = 'Confirm', danger = false }) {
  return new Promise((resolve) => {
    const titleId = nextId('dlg');
    const ok = h('button', { class: ['btn', danger ? 'btn-danger' : 'btn-primary'], value: 'ok' }, confirm);
    const dialog = h('dialog', { class: 'confirm-dialog', 'aria-labelledby': titleId },
      h('form', { method: 'dialog' },
        h('h2', { id: titleId }, title),
        body ? h('p', null, body) : null,
        h('div', { class: 'dialog-actions' },
          h('button', { class: 'btn', value: 'cancel' }, 'Cancel'),
          ok)));
    dialog.addEventListener('close', () => {
      resolve(dialog.returnValue === 'ok');
      dialog.remove();
    });
    document.body.append(dialog);
    dialog.showModal();
    ok.focus();
  });
}

/** Copies text to the clipboard; falls back to selecting an input's text. */
export async function copyText(text, input) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    if (input) { input.focus(); input.select(); }
    return false;
  }
}

// ---- formats --------------------------------------------------------------------------------

const intFormat = new Intl.NumberFormat();
const compactFormat = new Intl.NumberFormat(undefined, { notation: 'compact', maximumFractionDigits: 1 });

export const formatInt = (n) => intFormat.format(n ?? 0);
export const formatCompact = (n) => compactFormat.format(n ?? 0);

/** Micro-dollars as dollars: 1250 → "$0.00125", 2500000 → "$2.50". */
export function formatMoney(micros) {
  const dollars = (micros ?? 0) / 1e6;
  const abs = Math.abs(dollars);
  const digits = abs === 0 || abs >= 1 ? 2 : abs >= 0.01 ? 4 : 6;
  return new Intl.NumberFormat(undefined, {
    style: 'currency', currency: 'USD', minimumFractionDigits: 2, maximumFractionDigits: digits,
  }).format(dollars);
}

/** A price of micro-dollars per million tokens: "$0.15 / M tokens". */
export function formatPrice(microsPerMillion) {
  return `${formatMoney(microsPerMillion)} / M`;
}

/** Date and time in the reader's locale. */
export function formatDateTime(iso) {
  if (!iso) return '';
  return new Date(iso).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

/** "in 5 hours" for a time in the future. */
export function untilText(iso) {
  const s = (new Date(iso).getTime() - Date.now()) / 1000;
  const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });
  if (s <= 60) return rtf.format(Math.max(0, Math.ceil(s)), 'second');
  if (s < 3600) return rtf.format(Math.round(s / 60), 'minute');
  if (s < 2 * 86400) return rtf.format(Math.round(s / 3600), 'hour');
  return rtf.format(Math.round(s / 86400), 'day');
}

/** A `<time>` element with the absolute time as its tooltip. */
export function timeEl(iso, text) {
  return h('time', { datetime: iso, title: formatDateTime(iso) }, text ?? formatDateTime(iso));
}

/** A `<time>` reading "3 minutes ago", the absolute time as its tooltip. */
export function relativeTimeEl(iso) {
  return timeEl(iso, relativeTime(iso));
}

/** The day (YYYY-MM-DD, UTC) `days` before today. */
export function isoDay(daysAgo = 0) {
  const d = new Date(Date.now() - daysAgo * 86400000);
  return d.toISOString().slice(0, 10);
}

/** A page section with a heading. */
export function section(title, ...children) {
  const id = nextId('sec');
  return h('section', { class: 'settings-section', 'aria-labelledby': id },
    h('h2', { id }, title), ...children);
}

/** An inline "Loading…" placeholder. */
export const loading = (text = 'Loading…') => h('p', { class: 'muted loading', role: 'status' }, text);

/** An error panel with a retry button. */
export function errorPanel(err, retry) {
  return h('div', { class: 'card error-panel', role: 'alert' },
    h('p', null, describeError(err)),
    retry ? h('button', { class: 'btn', type: 'button', onclick: retry }, 'Try again') : null);
}
