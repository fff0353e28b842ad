// Admin → Audit: the admin audit trail (`GET /v1/admin/audit`), newest first — every catalog
// change, credit grant and MCP server change, with the admin, the request id and a summary of
// the change. Filters: one admin (an account id) and a range of days; "Show more" follows `next_cursor`.

import { h, replace } from '../lib/dom.js';
import { get } from '../lib/api.js';
import { field, section, loading, errorPanel, timeEl, isoDay } from '../settings/ui.js';

const ACTION = {
  ModelAdded: 'added a model', ModelUpdated: 'changed a model', CreditsAdded: 'granted credits',
  McpServerRegistered: 'registered an MCP server', McpServerUpdated: 'changed an MCP server',
  McpServerRemoved: 'removed an MCP server',
};

export function render(panel) {
  let gone = false;
  const actor = h('input', { name: 'actor', type: 'text', placeholder: 'Any admin', spellcheck: 'false', class: 'mono' });
  const from = h('input', { name: 'from', type: 'date', value: isoDay(29) });
  const to = h('input', { name: 'to', type: 'date', value: isoDay(0) });
  const filters = h('form', { class: 'inline-form audit-filters', onsubmit: (e) => { e.preventDefault(); load(); } },
    field('Admin account', actor), field('From', from), field('To', to),
    h('button', { class: 'btn btn-primary', type: 'submit' }, 'Show'));
  const tbody = h('tbody');
  const more = h('div', { class: 'audit-more' });
  const body = h('div', { class: 'audit-body', 'aria-live': 'polite' });
  replace(panel,
    section('Audit trail',
      h('p', { class: 'muted' }, 'What admins changed, newest first, from the event log: who, under which request, and what.'),
      filters),
    body);
  load();

  function query(cursor) {
    const q = new URLSearchParams();
    if (actor.value.trim()) q.set('actor', actor.value.trim());
    if (from.value) q.set('from', from.value);
    if (to.value) q.set('to', to.value);
    if (cursor) q.set('cursor', cursor);
    return `/v1/admin/audit?${q}`;
  }

  async function load() {
    replace(body, loading('Reading the trail…'));
    try {
      const page = await get(query());
      if (gone) return;
      if (!page.data.length) {
        replace(body, h('p', { class: 'muted empty-audit' }, 'No admin actions in this range.'));
        return;
      }
      replace(tbody);
      replace(body, h('div', { class: 'table-scroll' }, h('table', { class: 'data audit' },
        h('thead', null, h('tr', null,
          ['When', 'Admin', 'Action', 'Target', 'Details', 'Request'].map((c) => h('th', { scope: 'col' }, c)))),
        tbody)), more);
      append(page);
    } catch (e) {
      if (!gone) replace(body, errorPanel(e, load));
    }
  }

  function append(page) {
    tbody.append(...page.data.map(row));
    replace(more, page.next_cursor
      ? h('button', { class: 'btn', type: 'button', onclick: async (e) => {
        e.target.disabled = true;
        try {
          const next = await get(query(page.next_cursor));
          if (!gone) append(next);
        } catch (err) {
          if (!gone) replace(more, errorPanel(err));
        }
      } }, 'Show more')
      : null);
  }

  function row(e) {
    const who = e.actor_email || e.actor || '—';
    return h('tr', { dataset: { event: e.event_type, position: String(e.position) } },
      h('td', null, timeEl(e.at)),
      h('td', null, e.actor
        ? h('button', { class: 'btn btn-ghost linkish', type: 'button', title: e.actor, onclick: () => { actor.value = e.actor; load(); } }, who)
        : who),
      h('td', null, ACTION[e.event_type] || e.event_type),
      h('td', null, target(e.target)),
      h('td', { class: 'audit-details' }, details(e)),
      h('td', { class: 'mono muted' }, e.request_id || ''));
  }

  function target(t) {
    const label = `${t.type} ${t.id}`;
    if (t.type === 'account') return h('a', { href: `/admin/accounts/${encodeURIComponent(t.id)}`, 'data-link': '', class: 'mono' }, label);
    if (t.type === 'model') return h('a', { href: `/admin/models/${encodeURIComponent(t.id)}`, 'data-link': '' }, label);
    if (t.type === 'mcp_server') return h('a', { href: `/admin/mcp/${encodeURIComponent(t.id)}`, 'data-link': '' }, label);
    return label;
  }

  function details(e) {
    const d = e.details || {};
    if (e.event_type === 'CreditsAdded') {
      const reason = String(d.source || '').split(':').slice(2).join(':');
      return `${d.amount} credits${reason ? ` — ${reason}` : ''}`;
    }
    if (e.target.type === 'mcp_server' && d.url) return `${d.url} · ${d.enabled ? 'enabled' : 'disabled'} · secret ${d.secret ? 'set' : 'none'}`;
    if (e.target.type === 'model' && d.provider) return `${d.provider}/${d.upstream} · ${d.credits} credits · ${d.enabled ? 'enabled' : 'disabled'}`;
    return h('code', null, JSON.stringify(d));
  }

  return () => { gone = true; };
}
