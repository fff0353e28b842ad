// Settings → Profile & preferences: display name, nickname, biography, custom instructions,
// default and pinned models (from `GET /v1/models`), and the theme.
//
// The theme applies at once: it is stored in the preferences (`theme`: light | dark | system,
// so other devices follow) and in `localStorage['threadline.theme']`, which app.js reads at
// start. Other fields are saved with the Save button as one `PATCH /v1/me/preferences` of
// the fields that changed. A `preferences.changed` feed item (another tab or device) reloads
// the form unless it has unsaved edits. After a save the app emits ctx 'preferences'.

import { h, replace, toast } from '../lib/dom.js';
import { get, patch } from '../lib/api.js';
import { onFeed } from '../lib/feed.js';
import { field, fieldset, section, showApiError, clearErrors, busy, loading, errorPanel, describeError } from './ui.js';

const THEMES = [
  { value: 'system', label: 'System' },
  { value: 'light', label: 'Light' },
  { value: 'dark', label: 'Dark' },
];

const ACCESS_LABEL = { public: 'Everyone', account_required: 'Account', premium_required: 'Pro' };

/** Applies a theme to the page and remembers it in this browser. */
export function applyTheme(theme) {
  const value = theme === 'light' || theme === 'dark' ? theme : 'system';
  if (value === 'system') delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = value;
  try { localStorage.setItem('threadline.theme', value); } catch { /* private mode */ }
  return value;
}

export function render(panel, ctx) {
  let prefs = null;
  let models = [];
  let dirty = false;
  let gone = false;
  // Outlives redraws, so "Saved" stays when the form is drawn again.
  const themeStatus = h('span', { class: 'muted theme-status', role: 'status' });

  replace(panel, loading());
  load();

  const stopFeed = onFeed((item) => {
    if (item.type === 'preferences.changed' && !dirty) load();
  });

  async function load() {
    try {
      const [p, m] = await Promise.all([get('/v1/me/preferences'), get('/v1/models')]);
      if (gone) return;
      // Our own save comes back as a feed item too: redraw only when something changed, so
      // focus, the theme's status and edits in progress stay where they are.
      if (prefs && JSON.stringify(p) === JSON.stringify(prefs) && JSON.stringify(m.data) === JSON.stringify(models)) return;
      prefs = p;
      models = m.data;
      // Another device may have chosen a theme: follow it here too.
      if (prefs.theme && prefs.theme !== (localStorage.getItem('threadline.theme') || 'system')) applyTheme(prefs.theme);
      draw();
    } catch (e) {
      if (!gone) replace(panel, errorPanel(e, load));
    }
  }

  function draw() {
    const me = ctx.me || {};
    const markDirty = () => { dirty = true; };

    // --- profile (PATCH /v1/me) ---
    const name = h('input', { name: 'name', type: 'text', maxlength: 100, autocomplete: 'name', value: me.name || '' });
    const profileSave = h('button', { class: 'btn btn-primary', type: 'submit' }, 'Save name');
    const profileForm = h('form', { class: 'settings-form', 'data-form': 'profile', onsubmit: saveProfile },
      me.email ? h('p', null, h('span', { class: 'muted' }, 'Email: '), h('strong', { class: 'account-email' }, me.email),
        me.is_admin ? h('span', { class: 'badge' }, 'admin') : null) : null,
      field('Display name', name, 'Shown in the app. 1–100 characters.'),
      h('div', { class: 'form-actions' }, profileSave));

    async function saveProfile(e) {
      e.preventDefault();
      clearErrors(profileForm);
      const value = name.value.trim() || null;
      if (value === (me.name || null)) { toast('Nothing changed'); return; }
      try {
        await busy(profileSave, () => patch('/v1/me', { name: value }), 'Saving…');
        await ctx.refreshMe();
        toast('Name saved');
      } catch (err) {
        showApiError(profileForm, err);
      }
    }

    // --- preferences ---
    const nickname = h('input', { name: 'nickname', type: 'text', maxlength: 50, value: prefs.nickname || '', oninput: markDirty });
    const biography = h('textarea', { name: 'biography', rows: 3, maxlength: 1000, oninput: markDirty }, prefs.biography || '');
    const instructions = h('textarea', { name: 'custom_instructions', rows: 5, maxlength: 3000, oninput: markDirty }, prefs.custom_instructions || '');

    const known = new Map(models.map((m) => [m.id, m]));
    const defaultModel = h('select', { name: 'default_model', onchange: markDirty },
      h('option', { value: '' }, 'The server’s default'),
      groupByProvider(models).map(([provider, list]) => h('optgroup', { label: provider },
        list.map((m) => h('option', { value: m.id, selected: prefs.default_model === m.id },
          `${m.id} · ${creditsText(m.credits)}${m.available ? '' : ' (not on your plan)'}`)))),
      prefs.default_model && !known.has(prefs.default_model)
        ? h('option', { value: prefs.default_model, selected: true }, `${prefs.default_model} (no longer offered)`) : null);

    const pinnedSet = new Set(prefs.pinned_models || []);
    const pinnedBoxes = [];
    const pinGroups = groupByProvider([
      ...models,
      ...[...pinnedSet].filter((id) => !known.has(id)).map((id) => ({ id, provider: 'not offered', credits: 0, access: 'public', available: false, capabilities: [] })),
    ]).map(([provider, list]) => h('div', { class: 'pin-group' },
      h('h4', null, provider),
      list.map((m) => {
        const box = h('input', { type: 'checkbox', name: 'pinned_models', value: m.id, checked: pinnedSet.has(m.id), onchange: markDirty });
        pinnedBoxes.push(box);
        return h('label', { class: 'check pin-option' }, box, ' ',
          h('span', { class: 'pin-name' }, m.id),
          h('span', { class: 'badge badge-muted' }, creditsText(m.credits)),
          m.access !== 'public' ? h('span', { class: 'badge' }, ACCESS_LABEL[m.access] || m.access) : null,
          !m.available ? h('span', { class: 'muted pin-locked' }, 'locked') : null);
      })));
    const pinnedField = h('div', { class: 'field' },
      fieldset('Pinned models', h('p', { class: 'muted field-hint' }, 'Shown first in the model selector. Keep at least one.'),
        h('div', { class: 'pin-groups' }, pinGroups)),
      h('input', { type: 'hidden', name: 'pinned_models_error', id: 'pinned-models-anchor' }),
      h('p', { class: 'field-error', id: 'pinned-models-anchor-error', hidden: true }));

    const prefsSave = h('button', { class: 'btn btn-primary', type: 'submit' }, 'Save preferences');
    const prefsForm = h('form', { class: 'settings-form', 'data-form': 'preferences', onsubmit: savePrefs },
      field('Nickname', nickname, 'What the assistant calls you. Up to 50 characters.'),
      field('About you', biography, 'Sent to the model with every message. Up to 1,000 characters.'),
      field('Custom instructions', instructions, 'How the assistant should answer. Up to 3,000 characters.'),
      field('Default model', defaultModel, 'Used for new chats when you pick none.'),
      pinnedField,
      h('div', { class: 'form-actions' }, prefsSave));

    async function savePrefs(e) {
      e.preventDefault();
      clearErrors(prefsForm);
      const next = {
        nickname: nickname.value.trim() || null,
        biography: biography.value.trim() || null,
        custom_instructions: instructions.value.trim() || null,
        default_model: defaultModel.value || null,
        pinned_models: pinnedBoxes.filter((b) => b.checked).map((b) => b.value),
      };
      if (next.pinned_models.length === 0) {
        showApiError(prefsForm, { code: 'validation_failed', problem: { errors: { pinned_models_error: ['Pin at least one model.'] } } });
        return;
      }
      const body = {};
      for (const [k, v] of Object.entries(next)) {
        const was = prefs[k] ?? null;
        if (JSON.stringify(v) !== JSON.stringify(was)) body[k] = v;
      }
      if (Object.keys(body).length === 0) { dirty = false; toast('Nothing changed'); return; }
      try {
        prefs = await busy(prefsSave, () => patch('/v1/me/preferences', body), 'Saving…');
        dirty = false;
        ctx.emit('preferences', prefs);
        toast('Preferences saved');
      } catch (err) {
        showApiError(prefsForm, err, { pinned_models: 'pinned_models_error' });
      }
    }

    // --- theme ---
    const current = localStorage.getItem('threadline.theme') || prefs.theme || 'system';
    const themeGroup = fieldset('Theme',
      h('div', { class: 'theme-options', role: 'radiogroup', 'aria-label': 'Theme' },
        THEMES.map((t) => h('label', { class: 'theme-option' },
          h('input', { type: 'radio', name: 'theme', value: t.value, checked: current === t.value, onchange: () => chooseTheme(t.value) }),
          h('span', { class: `theme-swatch theme-swatch-${t.value}`, 'aria-hidden': 'true' }),
          t.label))),
      themeStatus);

    async function chooseTheme(value) {
      applyTheme(value);
      themeStatus.textContent = 'Saving…';
      try {
        prefs = await patch('/v1/me/preferences', { theme: value });
        themeStatus.textContent = 'Saved';
        ctx.emit('preferences', prefs);
      } catch (err) {
        themeStatus.textContent = `Not saved on the server: ${describeError(err)}`;
      }
    }

    replace(panel,
      section('Profile', profileForm),
      section('Appearance', h('div', { class: 'settings-form' }, themeGroup)),
      section('Preferences', prefsForm));
  }

  return () => {
    gone = true;
    stopFeed();
  };
}

function creditsText(n) {
  return n === 0 ? 'free' : `${n} credit${n === 1 ? '' : 's'}`;
}

/** [[provider, models sorted by id], …] in provider order. */
export function groupByProvider(models) {
  const groups = new Map();
  for (const m of models) {
    if (!groups.has(m.provider)) groups.set(m.provider, []);
    groups.get(m.provider).push(m);
  }
  return [...groups.entries()].map(([p, list]) => [p, list.sort((a, b) => a.id.localeCompare(b.id))]);
}
