// Admin → Accounts: look an account up by id (`/admin/accounts/{id}`; account ids are in the
// usage table grouped by account) and read its ledger statement
// (`GET /v1/admin/accounts/{id}/ledger`, oldest first, with the use and balance of each
// window or purchased book after every line), and grant it credits
// (`POST /v1/admin/accounts/{id}/credits`). A grant carries an `x-request-id` made when the
// form is drawn, so a retried click does not grant twice.

import { h, replace, toast } from '../lib/dom.js';
import { get, api } from '../lib/api.js';
import { field, section, loading, errorPanel, showApiError, clearErrors, setFieldError, busy, formatInt, formatMoney, timeEl } from '../settings/ui.js';

const KIND_LABEL = {
  reserved: 'reserved', settled: 'settled', released: 'released', carried: 'carried in',
  added: 'added', moved_out: 'moved out', book_opened: 'book opened', book_closed: 'book closed',
};

export function render(panel, { id, ctx }) {
  let gone = false;
  const accountId = h('input', { name: 'account', type: 'text', required: true, value: id || '', placeholder: '019ab4c5-77d2-…', spellcheck: 'false', class: 'mono' });
  const lookup = h('form', { class: 'inline-form account-lookup', onsubmit: (e) => {
    e.preventDefault();
    const v = accountId.value.trim();
    if (v) ctx.navigate(`/admin/accounts/${encodeURIComponent(v)}`);
  } }, field('Account id', accountId), h('button', { class: 'btn btn-primary', type: 'submit' }, 'Look up'));
  const body = h('div', { class: 'account-body' });
  replace(panel,
    section('Look up an account',
      h('p', { class: 'muted' }, 'Paste an account id. The usage table grouped by account lists them; your own is ',
        h('button', { class: 'btn btn-ghost linkish', type: 'button', onclick: () => ctx.navigate(`/admin/accounts/${ctx.me.id}`) }, ctx.me?.id || ''), '.'),
      lookup),
    body);
  if (id) load();
  else accountId.focus();

  async function load() {
    replace(body, loading('Reading the ledger…'));
    try {
      const statement = await get(`/v1/admin/accounts/${encodeURIComponent(id)}/ledger`);
      if (!gone) draw(statement);
    } catch (e) {
      if (gone) return;
      if (e.status === 404) replace(body, h('p', { class: 'card error-text', role: 'alert' }, `There is no account ${id}.`));
      else replace(body, errorPanel(e, load));
    }
  }

  function draw(statement) {
    const lines = statement.lines;
    const meters = [...new Set(lines.map((l) => l.meter))];
    const filter = h('select', { name: 'meter', 'aria-label': 'Show the lines of' },
      h('option', { value: '' }, 'Every meter'), meters.map((m) => h('option', { value: m }, m)));
    const tbody = h('tbody');
    const fill = () => {
      const shown = [...lines].reverse().filter((l) => !filter.value || l.meter === filter.value);
      replace(tbody, shown.map((l) => h('tr', { dataset: { kind: l.kind, meter: l.meter } },
        h('td', null, timeEl(l.at)),
        h('td', null, l.meter, h('span', { class: 'muted' }, ` ${l.window_key}`)),
        h('td', null, KIND_LABEL[l.kind] || l.kind),
        h('td', { class: 'num' }, amount(l.meter, l.amount)),
        h('td', { class: 'num' }, amount(l.meter, l.used)),
        h('td', { class: 'num ledger-balance' }, amount(l.meter, l.balance)),
        h('td', { class: 'ledger-ref mono', title: l.reference }, l.reference || '—'))));
      if (!shown.length) tbody.append(h('tr', null, h('td', { colspan: 7, class: 'muted' }, 'No lines.')));
    };
    filter.addEventListener('change', fill);
    fill();
    const purchased = lastBalance(lines, 'purchased');

    replace(body,
      section(`Account ${statement.account_id}`,
        h('p', null, 'Purchased credits: ', h('strong', { class: 'purchased-balance' }, formatInt(purchased)),
          ' · ', `${lines.length} ledger line${lines.length === 1 ? '' : 's'}`),
        grantForm(statement.account_id)),
      section('Statement',
        h('div', { class: 'statement-tools' }, filter, h('span', { class: 'muted' }, 'Newest first. Used and balance are the window’s (or book’s) after each line.')),
        h('div', { class: 'table-scroll' }, h('table', { class: 'data statement' },
          h('thead', null, h('tr', null,
            h('th', { scope: 'col' }, 'When'), h('th', { scope: 'col' }, 'Window'), h('th', { scope: 'col' }, 'Movement'),
            h('th', { scope: 'col', class: 'num' }, 'Amount'), h('th', { scope: 'col', class: 'num' }, 'Used'),
            h('th', { scope: 'col', class: 'num' }, 'Balance'), h('th', { scope: 'col' }, 'Reference'))),
          tbody))));
  }

  function grantForm(account) {
    let requestId = crypto.randomUUID();
    const amountIn = h('input', { name: 'amount', type: 'number', min: 1, max: 1000000, step: 1, required: true, inputmode: 'numeric' });
    const reason = h('input', { name: 'reason', type: 'text', required: true, maxlength: 200, placeholder: 'e.g. support ticket 1234' });
    const submit = h('button', { class: 'btn btn-primary', type: 'submit' }, 'Grant credits');
    const form = h('form', { class: 'settings-form grant-form', novalidate: true, onsubmit },
      h('h3', null, 'Grant credits'),
      h('div', { class: 'form-grid' },
        field('Credits', amountIn, '1–1,000,000. They never expire.'),
        field('Reason', reason, 'Shown on the ledger line.')),
      h('div', { class: 'form-actions' }, submit));
    for (const el of [amountIn, reason]) el.addEventListener('input', () => { requestId = crypto.randomUUID(); });

    async function onsubmit(e) {
      e.preventDefault();
      clearErrors(form);
      const n = Number(amountIn.value);
      if (!Number.isInteger(n) || n < 1 || n > 1000000) { setFieldError(form, 'amount', 'A whole number from 1 to 1,000,000.'); amountIn.focus(); return; }
      if (!reason.value.trim()) { setFieldError(form, 'reason', 'Say why (1–200 characters).'); reason.focus(); return; }
      try {
        const granted = await busy(submit, () => api('POST', `/v1/admin/accounts/${encodeURIComponent(account)}/credits`, {
          body: { amount: n, reason: reason.value.trim() }, headers: { 'x-request-id': requestId },
        }), 'Granting…');
        requestId = crypto.randomUUID();
        toast(`Granted ${formatInt(granted.amount)} credits. Purchased balance: ${formatInt(granted.purchased_credits)}`);
        if (account === ctx.me?.id) ctx.emit('usage');
        load();
      } catch (err) {
        showApiError(form, err);
      }
    }
    return form;
  }

  return () => { gone = true; };
}

function amount(meter, n) {
  return meter === 'cost_micros' ? formatMoney(n) : formatInt(n);
}

/** The balance after the newest line of a meter (the purchased books chain their balance). */
function lastBalance(lines, meter) {
  for (let i = lines.length - 1; i >= 0; i -= 1) if (lines[i].meter === meter) return lines[i].balance;
  return 0;
}
