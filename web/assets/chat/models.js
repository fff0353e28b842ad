// The model catalog and preferences as the chat needs them, and the model selector: a button
// (`aria-label="Model"`) showing the current model that opens a listbox grouped by provider
// (pinned models first) with capabilities and the credit cost of a message. Models the caller
// may not use are shown locked with an upgrade prompt (sign up for anonymous accounts).

import { get } from '../lib/api.js';
import { h } from '../lib/dom.js';
import { onFeed } from '../lib/feed.js';
import { icon } from './ui.js';

let modelsPromise = null;
let prefsPromise = null;

/** `GET /v1/models` (cached; `force` reloads). */
export function loadModels(force = false) {
  if (force || !modelsPromise) {
    modelsPromise = get('/v1/models').then((r) => r.data).catch((e) => { modelsPromise = null; throw e; });
  }
  return modelsPromise;
}

/** `GET /v1/me/preferences` (cached; reloaded on the feed's preferences.changed). */
export function loadPrefs(force = false) {
  if (force || !prefsPromise) {
    prefsPromise = get('/v1/me/preferences').catch(() => ({}));
  }
  return prefsPromise;
}

onFeed((item) => {
  if (item.type === 'preferences.changed') prefsPromise = null;
  if (item.type === 'ready') { prefsPromise = null; modelsPromise = null; }
});

/** The model a new chat starts with: the preference when usable, else the server's default. */
export function defaultModelId(models, prefs) {
  const usable = (id) => models.find((m) => m.id === id && m.available);
  if (prefs?.default_model && usable(prefs.default_model)) return prefs.default_model;
  const def = models.find((m) => m.default && m.available) || models.find((m) => m.available) || models[0];
  return def?.id || null;
}

const PROVIDERS = { openai: 'OpenAI', anthropic: 'Anthropic', gemini: 'Google', openrouter: 'OpenRouter', deepseek: 'DeepSeek', xai: 'xAI', groq: 'Groq', echo: 'Echo' };
export const providerName = (p) => PROVIDERS[p] || (p ? p[0].toUpperCase() + p.slice(1) : 'Other');

const CAPS = {
  reasoning: { label: 'Reasoning', icon: 'brain' },
  tools: { label: 'Tools', icon: 'wrench' },
  vision: { label: 'Vision', icon: 'eye' },
  documents: { label: 'Files', icon: 'file' },
};

export const credits = (n) => `${n} ${n === 1 ? 'credit' : 'credits'}`;

function capBadges(model) {
  return h('span', { class: 'caps' }, (model.capabilities || []).map((c) => {
    const cap = CAPS[c] || { label: c, icon: 'more' };
    return h('span', { class: `cap cap-${c}`, title: cap.label }, icon(cap.icon, 13), h('span', { class: 'cap-label' }, cap.label));
  }));
}

function lockReason(model, me) {
  if (model.available) return null;
  if (me?.kind === 'anonymous') return model.access === 'premium_required' ? 'Needs a paid plan' : 'Sign up to use';
  return 'Needs a paid plan';
}

let seq = 0;

/**
 * The selector. `onChange(id)` is called when the user picks a usable model.
 * Returns `{el, value, setValue(id), refresh(), model()}`.
 */
export function createModelPicker({ me, onChange }) {
  const uid = `mp${++seq}`;
  let models = [];
  let prefs = {};
  let value = null;
  let open = false;
  let active = -1;
  let options = [];

  const label = h('span', { class: 'model-name' }, 'Model');
  const button = h('button', {
    type: 'button', class: 'btn btn-ghost model-button', 'aria-label': 'Model', 'aria-haspopup': 'listbox',
    'aria-expanded': 'false', 'aria-controls': `${uid}-list`,
  }, label, icon('chevronDown', 14));
  const listbox = h('div', { id: `${uid}-list`, role: 'listbox', class: 'model-list', 'aria-label': 'Models', tabindex: '-1' });
  const prompt = h('div', { class: 'model-upgrade', hidden: true, role: 'status' });
  const popup = h('div', { class: 'model-popup', hidden: true }, listbox, prompt);
  const el = h('div', { class: 'model-picker' }, button, popup);

  const current = () => models.find((m) => m.id === value) || null;

  function paintButton() {
    const m = current();
    label.textContent = m ? m.id : (value || 'Model');
    button.title = m ? `${m.id} · ${credits(m.credits)} per message` : 'Choose a model';
  }

  function build() {
    const pinned = (prefs.pinned_models || []).map((id) => models.find((m) => m.id === id)).filter(Boolean);
    const groups = [];
    if (pinned.length) groups.push({ name: 'Pinned', items: pinned });
    const byProvider = new Map();
    for (const m of models) {
      if (pinned.includes(m)) continue;
      const key = providerName(m.provider);
      if (!byProvider.has(key)) byProvider.set(key, []);
      byProvider.get(key).push(m);
    }
    for (const [name, items] of byProvider) groups.push({ name, items });
    options = [];
    listbox.replaceChildren(...groups.map((g, gi) => {
      const gid = `${uid}-g${gi}`;
      return h('div', { role: 'group', 'aria-labelledby': gid, class: 'model-group' },
        h('div', { id: gid, class: 'model-group-name', role: 'presentation' }, g.name),
        g.items.map((m) => {
          const lock = lockReason(m, me());
          const opt = h('div', {
            id: `${uid}-o${options.length}`, role: 'option', class: ['model-option', lock && 'locked'],
            'aria-selected': String(m.id === value), 'aria-disabled': lock ? 'true' : null, dataset: { model: m.id },
            onclick: () => choose(m),
            onpointermove: () => setActive(options.indexOf(opt)),
          },
          h('span', { class: 'model-option-main' },
            h('span', { class: 'model-option-name' }, m.id, lock ? icon('lock', 13) : null),
            capBadges(m)),
          h('span', { class: 'model-option-side' },
            h('span', { class: 'model-cost' }, credits(m.credits)),
            lock ? h('span', { class: 'model-lock' }, lock) : null));
          options.push(opt);
          return opt;
        }));
    }));
    if (!models.length) listbox.replaceChildren(h('div', { class: 'muted model-empty' }, 'No models are available.'));
  }

  function setActive(i) {
    if (!options.length) return;
    active = (i + options.length) % options.length;
    options.forEach((o, k) => o.classList.toggle('active', k === active));
    listbox.setAttribute('aria-activedescendant', options[active].id);
    options[active].scrollIntoView({ block: 'nearest' });
  }

  function choose(m) {
    const lock = lockReason(m, me());
    if (lock) {
      const anon = me()?.kind === 'anonymous';
      prompt.replaceChildren(icon('lock', 14), ` ${m.id}: ${lock}. `,
        anon && m.access !== 'premium_required'
          ? h('a', { href: '/signup', onclick: close }, 'Sign up free')
          : h('a', { href: anon ? '/signup' : '/settings/billing', onclick: close }, anon ? 'Sign up' : 'Upgrade'));
      prompt.hidden = false;
      return;
    }
    setValue(m.id);
    close();
    button.focus();
    onChange?.(m.id);
  }

  function onKey(e) {
    if (e.key === 'ArrowDown') { e.preventDefault(); setActive(active + 1); }
    else if (e.key === 'ArrowUp') { e.preventDefault(); setActive(active - 1); }
    else if (e.key === 'Home') { e.preventDefault(); setActive(0); }
    else if (e.key === 'End') { e.preventDefault(); setActive(options.length - 1); }
    else if (e.key === 'Enter' || e.key === ' ') {
      e.preventDefault();
      const id = options[active]?.dataset.model;
      const m = models.find((x) => x.id === id);
      if (m) choose(m);
    } else if (e.key === 'Escape' || e.key === 'Tab') { e.preventDefault(); close(); button.focus(); }
  }
  listbox.addEventListener('keydown', onKey);

  function onOutside(e) { if (!el.contains(e.target)) close(); }

  async function openList() {
    open = true;
    prompt.hidden = true;
    popup.hidden = false;
    button.setAttribute('aria-expanded', 'true');
    build();
    setActive(Math.max(0, options.findIndex((o) => o.dataset.model === value)));
    listbox.focus();
    document.addEventListener('pointerdown', onOutside);
    // The catalog may have changed (an admin edited a model's credits): reload while open.
    try {
      const [fresh, p] = await Promise.all([loadModels(true), loadPrefs()]);
      models = fresh; prefs = p || {};
      if (open) { const keep = active; build(); setActive(Math.max(0, Math.min(keep, options.length - 1))); }
      paintButton();
    } catch { /* keep the cached list */ }
  }

  function close() {
    if (!open) return;
    open = false;
    popup.hidden = true;
    button.setAttribute('aria-expanded', 'false');
    document.removeEventListener('pointerdown', onOutside);
  }

  button.addEventListener('click', () => (open ? close() : openList()));
  button.addEventListener('keydown', (e) => { if (e.key === 'ArrowDown' && !open) { e.preventDefault(); openList(); } });

  function setValue(id) { value = id; paintButton(); if (open) build(); }

  async function refresh(force = false) {
    const [m, p] = await Promise.all([loadModels(force), loadPrefs()]);
    models = m; prefs = p || {};
    if (!value || !models.some((x) => x.id === value)) value = defaultModelId(models, prefs);
    paintButton();
    return models;
  }

  return {
    el,
    get value() { return value; },
    setValue,
    refresh,
    model: current,
    models: () => models,
    close,
  };
}
