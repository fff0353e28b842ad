// Admin → Models: the catalog (`GET /v1/models`, which lists the enabled models whose
// provider is configured) and one entry's editor (`GET`/`PUT /v1/admin/models/{id}`): provider
// and upstream name, capabilities, access tier, credits per message, prices (entered in
// dollars per million tokens, sent as micro-dollars), enabled, fallbacks. A PUT takes effect
// for the next message. Entries this browser edited that the catalog list no longer shows
// (disabled, or their provider has no key) are remembered in localStorage and read one by one,
// so they can be found again. After a save the app emits ctx 'models.changed' (the entry).

import { h, replace, toast } from '../lib/dom.js';
import { get, put } from '../lib/api.js';
import { field, fieldset, section, loading, errorPanel, showApiError, clearErrors, setFieldError, busy, formatPrice, describeError } from '../settings/ui.js';

const ACCESS = [
  { value: 'public', label: 'Everyone (anonymous too)' },
  { value: 'account_required', label: 'Signed-in accounts' },
  { value: 'premium_required', label: 'Pro subscribers' },
];
const ACCESS_SHORT = { public: 'Everyone', account_required: 'Account', premium_required: 'Pro' };
const CAPABILITIES = ['vision', 'documents', 'reasoning', 'tools'];
const PROVIDERS = ['openai', 'anthropic', 'gemini', 'openrouter', 'deepseek', 'xai', 'groq', 'echo'];
const PRICE_FIELDS = [
  ['input', 'Input'], ['output', 'Output'], ['cached_input', 'Cached input'], ['reasoning', 'Reasoning'],
];
const KNOWN_KEY = 'threadline.admin.models';
const ROUTE_ID = /^[A-Za-z0-9_.:@-]+$/;

/** The console's address of a model's editor (ids with `/` go in the query). */
export function modelHref(id) {
  return ROUTE_ID.test(id) ? `/admin/models/${id}` : `/admin/models?id=${encodeURIComponent(id)}`;
}

function knownIds() {
  try { return JSON.parse(localStorage.getItem(KNOWN_KEY) || '[]'); } catch { return []; }
}
function remember(id) {
  const ids = new Set(knownIds());
  ids.add(id);
  try { localStorage.setItem(KNOWN_KEY, JSON.stringify([...ids].slice(-100))); } catch { /* full */ }
}

export function render(panel, { id, ctx }) {
  const queryId = new URLSearchParams(location.search).get('id');
  const modelId = id || queryId;
  let gone = false;
  if (modelId) editor(modelId);
  else list();
  return () => { gone = true; };

  // ---- the list -------------------------------------------------------------------------------
  async function list() {
    replace(panel, loading());
    try {
      const offered = (await get('/v1/models')).data;
      const listed = new Set(offered.map((m) => m.id));
      const extra = await Promise.all(knownIds().filter((k) => !listed.has(k))
        .map((k) => get(`/v1/admin/models/${encodeURIComponent(k)}`).catch(() => null)));
      if (gone) return;
      drawList(offered, extra.filter(Boolean));
    } catch (e) {
      if (!gone) replace(panel, errorPanel(e, list));
    }
  }

  function drawList(offered, extra) {
    const openId = h('input', { name: 'id', type: 'text', required: true, maxlength: 128, placeholder: 'e.g. gpt-4.1-mini', spellcheck: 'false' });
    const openForm = h('form', { class: 'inline-form', onsubmit: (e) => {
      e.preventDefault();
      const v = openId.value.trim();
      if (v) ctx.navigate(modelHref(v));
    } }, field('Model id', openId), h('button', { class: 'btn', type: 'submit' }, 'Open or add'));

    const rows = [
      ...offered.map((m) => ({ ...m, status: 'offered' })),
      ...extra.map((m) => ({ ...m, status: m.enabled ? 'not offered' : 'disabled' })),
    ].sort((a, b) => a.provider.localeCompare(b.provider) || a.id.localeCompare(b.id));

    replace(panel,
      section('Catalog',
        h('p', { class: 'muted' }, 'The models users can pick. Disabled models and models whose provider has no API key on this server are not offered. Changes apply to the next message sent.'),
        h('div', { class: 'table-scroll' }, h('table', { class: 'data admin-models' },
          h('thead', null, h('tr', null,
            h('th', { scope: 'col' }, 'Model'), h('th', { scope: 'col' }, 'Provider'), h('th', { scope: 'col' }, 'Access'),
            h('th', { scope: 'col', class: 'num' }, 'Credits'), h('th', { scope: 'col', class: 'num' }, 'Input'),
            h('th', { scope: 'col', class: 'num' }, 'Output'), h('th', { scope: 'col' }, 'Capabilities'), h('th', { scope: 'col' }, 'Status'))),
          h('tbody', null, rows.map((m) => h('tr', { dataset: { model: m.id } },
            h('td', null, h('a', { href: modelHref(m.id), 'data-link': '' }, m.id), m.default ? h('span', { class: 'badge' }, 'default') : null),
            h('td', null, m.provider),
            h('td', null, ACCESS_SHORT[m.access] || m.access),
            h('td', { class: 'num model-credits' }, String(m.credits)),
            h('td', { class: 'num' }, formatPrice(m.prices.input)),
            h('td', { class: 'num' }, formatPrice(m.prices.output)),
            h('td', null, (m.capabilities || []).join(', ') || '—'),
            h('td', null, h('span', { class: ['badge', m.status !== 'offered' && 'badge-muted'] }, m.status)))))))),
      section('Another model', h('p', { class: 'muted' }, 'Open an entry by id (also a disabled one), or add a new one.'), openForm));
  }

  // ---- one entry ------------------------------------------------------------------------------
  async function editor(mid) {
    replace(panel, loading());
    let entry = null;
    try {
      entry = await get(`/v1/admin/models/${encodeURIComponent(mid)}`);
    } catch (e) {
      if (e.status !== 404) { if (!gone) replace(panel, errorPanel(e, () => editor(mid))); return; }
    }
    if (gone) return;
    drawEditor(mid, entry);
  }

  function drawEditor(mid, entry) {
    const isNew = !entry;
    const e = entry || {
      provider: '', upstream: mid, capabilities: [], access: 'public', credits: 1,
      prices: { input: 0, output: 0, cached_input: 0, reasoning: 0 }, enabled: true, fallbacks: [],
    };
    const providerList = h('datalist', { id: 'admin-providers' }, PROVIDERS.map((p) => h('option', { value: p })));
    const provider = h('input', { name: 'provider', type: 'text', required: true, list: 'admin-providers', value: e.provider, spellcheck: 'false' });
    const upstream = h('input', { name: 'upstream', type: 'text', required: true, value: e.upstream, spellcheck: 'false' });
    const access = h('select', { name: 'access' }, ACCESS.map((a) => h('option', { value: a.value, selected: e.access === a.value }, a.label)));
    const credits = h('input', { name: 'credits', type: 'number', min: 0, max: 10000, step: 1, required: true, value: String(e.credits), inputmode: 'numeric' });
    const enabled = h('input', { name: 'enabled', type: 'checkbox', checked: e.enabled });
    const caps = CAPABILITIES.map((c) => h('input', { type: 'checkbox', name: 'capabilities', value: c, checked: (e.capabilities || []).includes(c) }));
    const prices = Object.fromEntries(PRICE_FIELDS.map(([k]) => [k, h('input', {
      name: `prices.${k}`, type: 'number', min: 0, step: 'any', inputmode: 'decimal', value: String((e.prices?.[k] ?? 0) / 1e6),
    })]));
    const fallbackRows = h('ol', { class: 'fallback-list' });
    const addFallback = (fb = { provider: '', upstream: '' }) => {
      const p = h('input', { type: 'text', list: 'admin-providers', value: fb.provider, 'aria-label': 'Fallback provider', placeholder: 'provider', class: 'fb-provider' });
      const u = h('input', { type: 'text', value: fb.upstream, 'aria-label': 'Fallback upstream model', placeholder: 'upstream model', class: 'fb-upstream' });
      const li = h('li', { class: 'fallback-row' }, p, u,
        h('button', { class: 'btn btn-icon', type: 'button', 'aria-label': 'Remove this fallback', onclick: () => li.remove() }, '✕'));
      fallbackRows.append(li);
      return p;
    };
    for (const fb of e.fallbacks || []) addFallback(fb);

    const save = h('button', { class: 'btn btn-primary', type: 'submit' }, isNew ? 'Add model' : 'Save');
    const status = h('p', { class: 'muted save-status', role: 'status' });
    const form = h('form', { class: 'settings-form model-form', 'data-model': mid, novalidate: true, onsubmit },
      providerList,
      h('div', { class: 'form-grid' },
        field('Provider', provider, 'openai, anthropic, gemini, openrouter, deepseek, xai, groq or echo.'),
        field('Upstream model', upstream, 'The provider’s own name for it.')),
      h('div', { class: 'form-grid' },
        field('Who may use it', access),
        field('Credits per message', credits, '0–10,000. 0 makes it free.')),
      fieldset('Capabilities', h('div', { class: 'check-row' }, caps.map((c) => h('label', { class: 'check' }, c, ' ', c.value)))),
      fieldset('Prices (US dollars per million tokens)',
        h('div', { class: 'form-grid form-grid-4' }, PRICE_FIELDS.map(([k, label]) => field(label, prices[k]))),
        h('input', { type: 'hidden', name: 'prices', id: 'model-prices-anchor' }),
        h('p', { class: 'field-error', id: 'model-prices-anchor-error', hidden: true })),
      fieldset('Fallbacks',
        h('p', { class: 'muted field-hint' }, 'Tried in order when the provider fails before the first token.'),
        fallbackRows,
        h('button', { class: 'btn', type: 'button', onclick: () => addFallback().focus() }, 'Add a fallback'),
        h('input', { type: 'hidden', name: 'fallbacks', id: 'model-fallbacks-anchor' }),
        h('p', { class: 'field-error', id: 'model-fallbacks-anchor-error', hidden: true })),
      h('label', { class: 'check enabled-check' }, enabled, ' Enabled (offered to users when its provider is configured)'),
      h('input', { type: 'hidden', name: 'id', id: 'model-id-anchor' }),
      h('p', { class: 'field-error', id: 'model-id-anchor-error', hidden: true }),
      h('div', { class: 'form-actions' }, save, h('a', { class: 'btn btn-ghost', href: '/admin/models', 'data-link': '' }, 'Back to the catalog')),
      status);

    replace(panel, section(isNew ? `New model “${mid}”` : `Model “${mid}”`,
      isNew ? h('p', { class: 'muted' }, 'There is no catalog entry with this id yet: saving adds it.') : null,
      form));

    async function onsubmit(ev) {
      ev.preventDefault();
      clearErrors(form);
      status.textContent = '';
      const n = Number(credits.value);
      if (!Number.isInteger(n) || n < 0 || n > 10000) { setFieldError(form, 'credits', 'A whole number from 0 to 10,000.'); credits.focus(); return; }
      const priceMicros = {};
      for (const [k] of PRICE_FIELDS) {
        const v = prices[k].value.trim() === '' ? 0 : Number(prices[k].value);
        if (!Number.isFinite(v) || v < 0) { setFieldError(form, `prices.${k}`, 'A price of 0 or more.'); prices[k].focus(); return; }
        priceMicros[k] = Math.round(v * 1e6);
      }
      const fallbacks = [...fallbackRows.querySelectorAll('.fallback-row')].map((li) => ({
        provider: li.querySelector('.fb-provider').value.trim(), upstream: li.querySelector('.fb-upstream').value.trim(),
      })).filter((f) => f.provider || f.upstream);
      if (fallbacks.some((f) => !f.provider || !f.upstream)) { setFieldError(form, 'fallbacks', 'Each fallback needs a provider and an upstream model.'); return; }
      const body = {
        provider: provider.value.trim(),
        upstream: upstream.value.trim(),
        capabilities: caps.filter((c) => c.checked).map((c) => c.value),
        access: access.value,
        credits: n,
        prices: priceMicros,
        enabled: enabled.checked,
        ...(fallbacks.length ? { fallbacks } : {}),
      };
      if (!body.provider) { setFieldError(form, 'provider', 'Name the provider.'); provider.focus(); return; }
      if (!body.upstream) { setFieldError(form, 'upstream', 'Name the provider’s model.'); upstream.focus(); return; }
      try {
        const saved = await busy(save, () => put(`/v1/admin/models/${encodeURIComponent(mid)}`, body), 'Saving…');
        remember(mid);
        ctx.emit('models.changed', saved);
        toast(`Saved ${mid}: ${saved.credits} credit${saved.credits === 1 ? '' : 's'} per message`);
        if (isNew) drawEditor(mid, saved);
        else status.textContent = `Saved at ${new Date().toLocaleTimeString()}.`;
      } catch (err) {
        if (err.code === 'validation_failed') showApiError(form, err);
        else { showApiError(form, err); status.textContent = describeError(err); }
      }
    }
  }
}
