// Settings → API keys: personal keys (`tlk_…`) for scripts and other apps. Lists them
// (`GET /v1/me/api-keys`), creates one with a name (the secret is shown once, in a dialog
// with a copy button and a warning), and revokes them.

import { h, replace, toast } from '../lib/dom.js';
import { get, post, del } from '../lib/api.js';
import { field, section, loading, errorPanel, describeError, confirmDialog, showApiError, clearErrors, setFieldError, setFormError, timeEl, busy, copyText, nextId } from './ui.js';

export function render(panel, ctx) {
  let gone = false;
  const list = h('div', { class: 'key-list-box' }, loading());
  const name = h('input', { name: 'name', type: 'text', maxlength: 100, required: true, placeholder: 'e.g. laptop script' });
  const create = h('button', { class: 'btn btn-primary', type: 'submit' }, 'Create key');
  const form = h('form', { class: 'settings-form key-form', onsubmit: onCreate },
    field('Key name', name, 'A name to recognise it by. The key acts as your account until you revoke it.'),
    h('div', { class: 'form-actions' }, create));

  replace(panel,
    section('Create a key', form),
    section('Your keys', list));
  load();

  async function load() {
    try {
      const keys = await get('/v1/me/api-keys');
      if (!gone) drawList(keys.data);
    } catch (e) {
      if (!gone) replace(list, errorPanel(e, load));
    }
  }

  function drawList(keys) {
    if (!keys.length) { replace(list, h('p', { class: 'muted empty-keys' }, 'No API keys yet.')); return; }
    replace(list, h('div', { class: 'table-scroll' }, h('table', { class: 'data api-keys' },
      h('thead', null, h('tr', null,
        h('th', { scope: 'col' }, 'Name'), h('th', { scope: 'col' }, 'Key'), h('th', { scope: 'col' }, 'Created'),
        h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'Actions')))),
      h('tbody', null, keys.map((k) => {
        const revoke = h('button', { class: 'btn btn-danger', type: 'button', 'aria-label': `Revoke key ${k.name}`, onclick: () => onRevoke(k, revoke) }, 'Revoke');
        return h('tr', { dataset: { keyId: k.id } },
          h('td', { class: 'key-name' }, k.name),
          h('td', null, h('code', null, `${k.prefix}…`)),
          h('td', null, timeEl(k.created_at)),
          h('td', { class: 'num' }, revoke));
      })))));
  }

  async function onCreate(e) {
    e.preventDefault();
    clearErrors(form);
    const value = name.value.trim();
    if (!value) { setFieldError(form, 'name', 'Give the key a name.'); name.focus(); return; }
    try {
      const key = await busy(create, () => post('/v1/me/api-keys', { name: value }), 'Creating…');
      name.value = '';
      showSecret(key);
      load();
    } catch (err) {
      if (err.code === 'too_many_api_keys') setFieldError(form, 'name', 'You have 20 keys, the most an account may hold. Revoke one first.');
      else if (err.code === 'session_required') setFormError(form, 'Keys can only be managed from a signed-in browser, not with a key.');
      else showApiError(form, err);
    }
  }

  async function onRevoke(k, button) {
    const ok = await confirmDialog({
      title: `Revoke “${k.name}”?`,
      body: 'Anything using this key stops working at once.',
      confirm: 'Revoke', danger: true,
    });
    if (!ok) return;
    try {
      await busy(button, () => del(`/v1/me/api-keys/${encodeURIComponent(k.id)}`), 'Revoking…');
      toast('Key revoked');
      load();
    } catch (err) {
      toast(describeError(err), 'error');
    }
  }

  return () => { gone = true; };
}

/** The dialog that shows a new key's secret, once. The secret leaves the page when it closes. */
function showSecret(key) {
  const titleId = nextId('dlg');
  const secret = h('input', { class: 'secret-value', type: 'text', readonly: true, value: key.secret, 'aria-label': 'Your new API key', spellcheck: 'false' });
  const copied = h('span', { class: 'muted', role: 'status' });
  const copy = h('button', {
    class: 'btn', type: 'button',
    onclick: async () => {
      const ok = await copyText(key.secret, secret);
      copied.textContent = ok ? 'Copied' : 'Selected: press Ctrl+C to copy';
    },
  }, 'Copy');
  const dialog = h('dialog', { class: 'secret-dialog', 'aria-labelledby': titleId },
    h('h2', { id: titleId }, `API key “${key.name}” created`),
    h('p', { class: 'warning-text', role: 'alert' }, 'Copy it now. It is shown only this once: Threadline keeps only a fingerprint of it.'),
    h('div', { class: 'secret-row' }, secret, copy),
    copied,
    h('p', { class: 'muted' }, 'Use it as a bearer token: ', h('code', null, 'Authorization: Bearer tlk_…')),
    h('form', { method: 'dialog', class: 'dialog-actions' },
      h('button', { class: 'btn btn-primary', value: 'done' }, 'I have copied it')));
  dialog.addEventListener('close', () => { secret.value = ''; dialog.remove(); });
  document.body.append(dialog);
  dialog.showModal();
  secret.focus();
  secret.select();
}
