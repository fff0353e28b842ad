// Admin → Usage: the dashboard over `GET /v1/admin/usage`. A date range (UTC days) drives
// three reports: by day (credits and tokens as lines, cost as bars), by model and by tier
// (bars), plus a table grouped by the chosen dimension and its CSV download
// (`format=csv`, an attachment through the cookie). The range and grouping live in the
// address (`/admin/usage?from=…&to=…&group_by=…`) so a view can be shared or reloaded.

import { h, replace } from '../lib/dom.js';
import { get } from '../lib/api.js';
import { lineChart, barChart } from '../lib/chart.js';
import { field, section, loading, errorPanel, showApiError, clearErrors, formatInt, formatMoney, formatCompact, isoDay, busy } from '../settings/ui.js';

const GROUPS = [
  ['day', 'Day'], ['model', 'Model'], ['provider', 'Provider'], ['tier', 'Tier'], ['account', 'Account'],
];
const DAY_MS = 86400000;

/** Every day from `from` to `to` (YYYY-MM-DD, UTC), at most 400. */
export function daysBetween(from, to) {
  const out = [];
  let t = Date.parse(`${from}T00:00:00Z`);
  const end = Date.parse(`${to}T00:00:00Z`);
  while (t <= end && out.length < 400) { out.push(new Date(t).toISOString().slice(0, 10)); t += DAY_MS; }
  return out;
}

export function render(panel, { ctx }) {
  const q = new URLSearchParams(location.search);
  let gone = false;
  const state = {
    from: q.get('from') || isoDay(29),
    to: q.get('to') || isoDay(0),
    group_by: GROUPS.some(([g]) => g === q.get('group_by')) ? q.get('group_by') : 'model',
  };

  const from = h('input', { type: 'date', name: 'from', value: state.from, required: true });
  const to = h('input', { type: 'date', name: 'to', value: state.to, required: true });
  const groupBy = h('select', { name: 'group_by' }, GROUPS.map(([g, label]) => h('option', { value: g, selected: g === state.group_by }, label)));
  const apply = h('button', { class: 'btn btn-primary', type: 'submit' }, 'Show');
  const presets = h('div', { class: 'range-presets', role: 'group', 'aria-label': 'Quick ranges' },
    [[7, 'Last 7 days'], [30, 'Last 30 days'], [90, 'Last 90 days']].map(([n, label]) => h('button', {
      class: 'btn btn-ghost', type: 'button',
      onclick: () => { from.value = isoDay(n - 1); to.value = isoDay(0); form.requestSubmit(); },
    }, label)));
  const form = h('form', { class: 'usage-filters', onsubmit: (e) => { e.preventDefault(); load(); } },
    field('From', from), field('To', to), field('Table by', groupBy),
    h('div', { class: 'usage-filters-actions' }, apply));
  groupBy.addEventListener('change', () => form.requestSubmit());

  const totals = h('div', { class: 'usage-totals' });
  const charts = h('div', { class: 'usage-charts' });
  const table = h('div', { class: 'usage-table' });
  replace(panel,
    section('Usage', form, presets, totals),
    h('div', { class: 'usage-body' }, charts, table));
  load();

  async function load() {
    clearErrors(form);
    state.from = from.value;
    state.to = to.value;
    state.group_by = groupBy.value;
    const search = new URLSearchParams(state).toString();
    history.replaceState(null, '', `${location.pathname}?${search}`);
    replace(charts, loading('Loading the reports…'));
    replace(table);
    const range = { from: state.from, to: state.to };
    try {
      const [byDay, byModel, byTier, grouped, total] = await busy(apply, () => Promise.all([
        get('/v1/admin/usage', { ...range, group_by: 'day' }),
        get('/v1/admin/usage', { ...range, group_by: 'model' }),
        get('/v1/admin/usage', { ...range, group_by: 'tier' }),
        get('/v1/admin/usage', { ...range, group_by: state.group_by }),
        get('/v1/admin/usage', range),
      ]), 'Loading…');
      if (gone) return;
      drawTotals(total.rows[0]);
      drawCharts(byDay, byModel, byTier);
      drawTable(grouped);
    } catch (err) {
      if (gone) return;
      replace(charts);
      if (err.code === 'validation_failed') showApiError(form, err);
      else replace(charts, errorPanel(err, load));
    }
  }

  function drawTotals(row) {
    const r = row || { messages: 0, input_tokens: 0, output_tokens: 0, reasoning_tokens: 0, cached_tokens: 0, credits: 0, cost_micros: 0 };
    const stat = (label, value, cls) => h('div', { class: ['card', 'stat', cls] }, h('div', { class: 'stat-value' }, value), h('div', { class: 'muted stat-label' }, label));
    replace(totals,
      stat('Replies', formatInt(r.messages), 'stat-messages'),
      stat('Credits', formatInt(r.credits), 'stat-credits'),
      stat('Tokens in / out', `${formatCompact(r.input_tokens)} / ${formatCompact(r.output_tokens + r.reasoning_tokens)}`, 'stat-tokens'),
      stat('Provider cost', formatMoney(r.cost_micros), 'stat-cost'));
  }

  // Each chart is drawn at its card's width (so its text stays at its real size) and drawn
  // again when that width changes (a rotated phone, a resized window).
  let drawn = [];
  const observer = new ResizeObserver(() => {
    for (const c of drawn) {
      const w = c.card.clientWidth - 28;
      if (Math.abs(w - c.width) > 24) paint(c);
    }
  });
  observer.observe(charts);

  function paint(c) {
    c.width = Math.max(260, c.card.clientWidth - 28);
    replace(c.card, c.build(c.width));
  }

  function drawCharts(byDay, byModel, byTier) {
    const days = daysBetween(byDay.from, byDay.to);
    const rowsByDay = new Map(byDay.rows.map((r) => [r.group.day, r]));
    const at = (day, key) => rowsByDay.get(day)?.[key] || 0;
    const short = (d) => d.slice(5); // MM-DD
    const line = (name, key) => ({ name, points: days.map((d) => ({ x: d, y: at(d, key) })) });
    const byName = (report, dim, key) => report.rows
      .map((r) => ({ label: r.group[dim] || '(none)', value: r[key] }))
      .sort((a, b) => b.value - a.value);
    const chart = (build) => ({ card: h('div', { class: 'card chart-card' }), build, width: 0 });
    const daily = [
      chart((width) => lineChart([line('Credits', 'credits')], { title: 'Credits by day', width, integer: true, area: true, xFormat: short, className: 'chart-credits-day' })),
      chart((width) => lineChart([line('Input', 'input_tokens'), line('Output', 'output_tokens'), line('Reasoning', 'reasoning_tokens')],
        { title: 'Tokens by day', width, integer: true, xFormat: short, className: 'chart-tokens-day' })),
      chart((width) => barChart(days.map((d) => ({ label: d, value: at(d, 'cost_micros') })),
        { title: 'Provider cost by day', width, seriesName: 'Cost', format: formatMoney, xFormat: short, className: 'chart-cost-day' })),
      chart((width) => barChart(days.map((d) => ({ label: d, value: at(d, 'messages') })),
        { title: 'Replies by day', width, seriesName: 'Replies', integer: true, xFormat: short, className: 'chart-messages-day' })),
    ];
    const grouped = [
      chart((width) => barChart(byName(byModel, 'model', 'credits'), { title: 'Credits by model', width, horizontal: true, integer: true, seriesName: 'Credits', className: 'chart-credits-model' })),
      chart((width) => barChart(byName(byModel, 'model', 'cost_micros'), { title: 'Cost by model', width, horizontal: true, seriesName: 'Cost', format: formatMoney, className: 'chart-cost-model' })),
      chart((width) => barChart(byName(byModel, 'model', 'messages'), { title: 'Replies by model', width, horizontal: true, integer: true, seriesName: 'Replies', className: 'chart-messages-model' })),
      chart((width) => barChart(byName(byTier, 'tier', 'credits'), { title: 'Credits by tier', width, horizontal: true, integer: true, seriesName: 'Credits', className: 'chart-credits-tier' })),
    ];
    replace(charts,
      byDay.rows.length === 0 ? h('p', { class: 'muted usage-empty' }, 'No replies were started in this range.') : null,
      h('h2', { class: 'usage-subhead' }, 'By day'),
      h('div', { class: 'chart-cards' }, daily.map((c) => c.card)),
      h('h2', { class: 'usage-subhead' }, 'By model and tier'),
      h('div', { class: 'chart-cards' }, grouped.map((c) => c.card)));
    drawn = [...daily, ...grouped];
    for (const c of drawn) paint(c);
  }

  function drawTable(report) {
    const dims = report.group_by;
    const csv = `/v1/admin/usage?${new URLSearchParams({ from: report.from, to: report.to, group_by: dims.join(','), format: 'csv' })}`;
    const rows = report.rows;
    replace(table, section(`Totals by ${GROUPS.find(([g]) => g === dims[0])?.[1].toLowerCase() || 'group'}`,
      h('p', null, h('a', { class: 'btn csv-download', href: csv, download: '' }, 'Download CSV')),
      rows.length ? h('div', { class: 'table-scroll' }, h('table', { class: 'data usage-report' },
        h('thead', null, h('tr', null,
          dims.map((d) => h('th', { scope: 'col' }, GROUPS.find(([g]) => g === d)?.[1] || d)),
          ['Replies', 'Input tokens', 'Output tokens', 'Reasoning', 'Cached', 'Credits', 'Cost'].map((c) => h('th', { scope: 'col', class: 'num' }, c)))),
        h('tbody', null, rows.map((r) => h('tr', null,
          dims.map((d) => h('td', null, d === 'account' && r.group[d]
            ? h('a', { href: `/admin/accounts/${encodeURIComponent(r.group[d])}`, 'data-link': '', class: 'mono' }, r.group[d])
            : (r.group[d] || '—'))),
          [r.messages, r.input_tokens, r.output_tokens, r.reasoning_tokens, r.cached_tokens, r.credits].map((v) => h('td', { class: 'num' }, formatInt(v))),
          h('td', { class: 'num' }, formatMoney(r.cost_micros)))))))
        : h('p', { class: 'muted' }, 'Nothing to show in this range.')));
  }

  return () => { gone = true; observer.disconnect(); };
}
