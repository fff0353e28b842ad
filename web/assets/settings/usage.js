// Settings → Usage & plan: `GET /v1/me/usage` as one bar per meter (limit, used, reserved,
// remaining, window, reset time), the purchased credits, the newest ledger lines, and the way
// up: checkout (`POST /v1/billing/checkout`) and the billing portal. A server without billing
// answers 409 `billing_not_configured`; the page then says so instead of offering buttons.
// Refreshes itself on the feed's `usage.changed` and on ctx 'usage'.

import { h, replace, toast } from '../lib/dom.js';
import { get, post } from '../lib/api.js';
import { onFeed } from '../lib/feed.js';
import { section, loading, errorPanel, describeError, formatInt, formatMoney, untilText, timeEl, relativeTimeEl, busy } from './ui.js';

const METER_LABEL = {
  credits: 'Credits',
  web_searches: 'Web searches',
  research_runs: 'Research runs',
  cost_micros: 'Cost budget',
};

const KIND_LABEL = {
  reserved: 'Reserved for a reply',
  settled: 'Spent on a reply',
  released: 'Given back',
  carried: 'Carried from before sign-up',
  added: 'Credits added',
  moved_out: 'Moved to another account',
  book_opened: 'Balance carried over',
  book_closed: 'Book closed',
};

const TIER_LABEL = { anonymous: 'Anonymous', free: 'Free', pro: 'Pro' };

export function render(panel, ctx) {
  let gone = false;
  let timer = null;
  let billingNote = null; // stays across refreshes once the server said "not configured"

  replace(panel, loading());
  load();

  const refresh = () => {
    clearTimeout(timer);
    timer = setTimeout(load, 300);
  };
  const stopFeed = onFeed((item) => { if (item.type === 'usage.changed') refresh(); });
  const stopBus = ctx.on('usage', refresh);

  async function load() {
    try {
      const usage = await get('/v1/me/usage');
      if (!gone) draw(usage);
    } catch (e) {
      if (!gone) replace(panel, errorPanel(e, load));
    }
  }

  function draw(usage) {
    const me = ctx.me || {};
    replace(panel,
      section('Your plan',
        h('p', { class: 'plan-line' },
          'Plan: ', h('strong', { class: 'plan-tier', dataset: { tier: usage.tier } }, TIER_LABEL[usage.tier] || usage.tier),
          me.pro_until ? h('span', { class: 'muted' }, ` · Pro until `, timeEl(me.pro_until)) : null,
          me.subscription_status ? h('span', { class: 'badge badge-muted' }, me.subscription_status) : null),
        h('div', { class: 'meters' },
          usage.meters.length ? usage.meters.map(meterCard) : h('p', { class: 'muted' }, 'Nothing is metered on your plan.')),
        h('div', { class: 'card purchased' },
          h('div', { class: 'purchased-amount' }, formatInt(usage.purchased_credits)),
          h('div', null,
            h('strong', null, 'Purchased credits'),
            h('p', { class: 'muted' }, 'Bought or granted credits never expire. They are spent once the day’s credits are used up.')))),
      upgradeSection(usage, me),
      section('Recent activity', ledgerTable(usage.ledger)));
  }

  function upgradeSection(usage, me) {
    if (me.kind === 'anonymous') {
      return section('Get more',
        h('p', null, 'Signed-in accounts get more credits every day and can subscribe to Pro. ',
          h('a', { href: '/signup', 'data-link': '' }, 'Sign up'), ' — your chats are kept.'));
    }
    const note = h('p', { class: 'muted billing-note', role: 'status' }, billingNote || '');
    note.hidden = !billingNote;
    const buttons = [];
    if (usage.tier !== 'pro') {
      buttons.push(h('button', { class: 'btn btn-primary', type: 'button', dataset: { product: 'pro' }, onclick: (e) => checkout(e.currentTarget, 'pro', note) }, 'Upgrade to Pro'));
    }
    buttons.push(h('button', { class: 'btn', type: 'button', dataset: { product: 'credits-100' }, onclick: (e) => checkout(e.currentTarget, 'credits-100', note) }, 'Buy 100 credits'));
    if (me.subscription_status || usage.tier === 'pro') {
      buttons.push(h('button', { class: 'btn', type: 'button', onclick: (e) => portal(e.currentTarget, note) }, 'Manage billing'));
    }
    for (const b of buttons) b.disabled = Boolean(billingNote);
    return section(usage.tier === 'pro' ? 'Billing' : 'Upgrade',
      h('p', null, usage.tier === 'pro'
        ? 'You are on Pro. Credit packs add credits that never expire.'
        : 'Pro gives 10× the daily credits, more web searches, research runs and the premium models.'),
      h('div', { class: 'form-actions upgrade-actions' }, buttons),
      note);
  }

  async function checkout(button, product, note) {
    const back = `${location.origin}/settings/usage`;
    try {
      const link = await busy(button, () => post('/v1/billing/checkout', { product, success_url: `${back}?checkout=done`, cancel_url: back }), 'Opening…');
      location.assign(link.url);
    } catch (err) {
      billingProblem(err, note, product, button);
    }
  }

  async function portal(button, note) {
    try {
      const link = await busy(button, () => get('/v1/billing/portal', { return_url: `${location.origin}/settings/usage` }), 'Opening…');
      location.assign(link.url);
    } catch (err) {
      billingProblem(err, note);
    }
  }

  function billingProblem(err, note, product, button) {
    let text;
    if (err.code === 'billing_not_configured') {
      text = 'Billing is not set up on this server, so upgrades cannot be bought here. An admin can grant credits.';
      billingNote = text;
      for (const b of note.parentElement.querySelectorAll('.upgrade-actions .btn')) b.disabled = true;
    } else if (err.code === 'validation_failed' && err.problem?.errors?.product) {
      text = product === 'pro'
        ? 'Pro is not sold on this server: its billing has no such product.'
        : 'Credit packs are not sold on this server: its billing has no such product.';
      if (button) button.disabled = true;
    } else if (err.code === 'not_found') {
      text = 'No billing account is recorded for you yet.';
    } else if (err.code === 'upstream_error') {
      text = 'The billing provider could not be reached. Try again later.';
    } else {
      text = describeError(err);
    }
    note.textContent = text;
    note.hidden = false;
    toast(text, 'error');
  }

  if (new URLSearchParams(location.search).get('checkout') === 'done') {
    toast('Thank you! Your plan updates as soon as the payment is confirmed.');
  }

  return () => {
    gone = true;
    clearTimeout(timer);
    stopFeed();
    stopBus();
  };
}

/** One meter as a card with a bar (role=meter). */
export function meterCard(m) {
  const money = m.meter === 'cost_micros';
  const fmt = money ? formatMoney : formatInt;
  const pct = m.limit > 0 ? Math.min(100, (m.used / m.limit) * 100) : 100;
  const reservedPct = m.limit > 0 ? Math.min(pct, (m.reserved / m.limit) * 100) : 0;
  const level = m.limit === 0 ? 'none' : m.remaining === 0 ? 'empty' : pct >= 80 ? 'low' : 'ok';
  const label = METER_LABEL[m.meter] || m.meter;
  const fill = h('div', { class: 'meter-fill' });
  fill.style.width = `${pct}%`;
  const reserved = h('div', { class: 'meter-reserved' });
  reserved.style.width = `${reservedPct}%`;
  reserved.style.left = `${pct - reservedPct}%`;
  return h('div', { class: 'card meter-card', dataset: { meter: m.meter, level } },
    h('div', { class: 'meter-head' },
      h('strong', null, label),
      h('span', { class: 'muted' }, windowText(m.window))),
    m.limit === 0
      ? h('p', { class: 'muted' }, 'Not included in your plan.')
      : [
        h('div', {
          class: 'meter-bar', role: 'meter', 'aria-label': `${label} used`,
          'aria-valuemin': 0, 'aria-valuemax': m.limit, 'aria-valuenow': Math.min(m.used, m.limit),
          'aria-valuetext': `${fmt(m.used)} of ${fmt(m.limit)} used`,
        }, fill, reserved),
        h('p', { class: 'meter-numbers' },
          h('span', { class: 'meter-remaining' }, h('strong', null, fmt(m.remaining)), ' left'),
          h('span', { class: 'muted' }, ` · ${fmt(m.used)} of ${fmt(m.limit)} used`),
          m.reserved > 0 ? h('span', { class: 'muted' }, ` (${fmt(m.reserved)} for replies still running)`) : null),
      ],
    m.limit === 0 ? null : h('p', { class: 'muted meter-reset' }, 'Resets ', timeEl(m.resets_at, untilText(m.resets_at))));
}

function windowText(w) {
  if (w === 'day') return 'per day';
  const n = /^(\d+)h$/.exec(w);
  return n ? `every ${n[1]} hours` : w;
}

function ledgerTable(lines) {
  if (!lines.length) return h('p', { class: 'muted' }, 'No credit movements yet. Each reply you get shows up here.');
  return h('div', { class: 'table-scroll' },
    h('table', { class: 'data ledger' },
      h('thead', null, h('tr', null,
        h('th', { scope: 'col' }, 'When'),
        h('th', { scope: 'col' }, 'What'),
        h('th', { scope: 'col' }, 'Meter'),
        h('th', { scope: 'col', class: 'num' }, 'Amount'))),
      h('tbody', null, lines.map((l) => h('tr', null,
        h('td', null, relativeTimeEl(l.at)),
        h('td', null, KIND_LABEL[l.kind] || l.kind, refText(l)),
        h('td', null, METER_LABEL[l.meter] || (l.meter === 'purchased' ? 'Purchased' : l.meter)),
        h('td', { class: 'num' }, l.meter === 'cost_micros' ? formatMoney(l.amount) : formatInt(l.amount)))))));
}

function refText(line) {
  const ref = line.generation_id || '';
  if (line.kind === 'added' && ref.startsWith('grant:')) {
    const reason = ref.split(':').slice(2).join(':');
    return h('span', { class: 'muted' }, reason ? ` · ${reason}` : ' · granted');
  }
  if (line.kind === 'added' && ref.startsWith('order:')) return h('span', { class: 'muted' }, ' · purchase');
  return null;
}
