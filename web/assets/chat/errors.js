// What the chat shows for a refused request: a clear sentence, the reset time for a used-up
// quota (from the problem body, Retry-After, or the usage), and a link to sign up or upgrade.

import { h } from '../lib/dom.js';
import { formatResetTime } from './ui.js';

/** The reset time of a problem: its `resets_at`, else now + Retry-After seconds. */
export function resetOf(err) {
  const p = err.problem || {};
  if (p.resets_at) return p.resets_at;
  const ra = Number(err.retryAfter);
  if (ra > 0) return new Date(Date.now() + ra * 1000).toISOString();
  return null;
}

/**
 * A DOM node describing `err` (an ApiError, or anything with status/code/detail/problem).
 * `me` decides between "Sign up" (anonymous) and "Upgrade" links.
 */
export function describeError(err, me) {
  const p = err.problem || {};
  const code = err.code || p.code;
  const anonymous = me?.kind === 'anonymous';
  const upgrade = anonymous
    ? h('a', { href: '/signup', class: 'btn btn-primary btn-small' }, 'Sign up for more')
    : h('a', { href: '/settings/billing', class: 'btn btn-primary btn-small' }, 'Get more credits');
  if (err.status === 429) {
    const at = resetOf(err);
    if (code === 'quota_exceeded') {
      const meter = p.meter === 'web_searches' ? 'web searches' : p.meter === 'research_runs' ? 'research runs' : 'credits';
      return h('div', { class: 'problem' },
        h('strong', null, `You have used today's ${meter}.`), ' ',
        at ? `They reset ${formatResetTime(at)}.` : 'Try again later.', ' ', upgrade);
    }
    return h('div', { class: 'problem' }, h('strong', null, 'Too many requests. '),
      at ? `Try again ${formatResetTime(at)}.` : (err.detail || 'Try again in a moment.'));
  }
  if (err.status === 402) {
    const what = code === 'plan_required'
      ? (p.meter === 'research_runs' ? 'Research needs a paid plan.' : 'Your plan does not include this.')
      : code === 'premium_required' ? 'This model needs a paid plan.' : 'Credits are needed for this.';
    return h('div', { class: 'problem' }, h('strong', null, what), ' ',
      h('a', { href: '/settings/billing', class: 'btn btn-primary btn-small' }, 'See plans'));
  }
  if (err.status === 403 && (code === 'account_required' || code === 'premium_required')) {
    return h('div', { class: 'problem' },
      h('strong', null, code === 'account_required' ? 'This model needs an account.' : 'This model needs a paid plan.'), ' ',
      anonymous ? h('a', { href: '/signup', class: 'btn btn-primary btn-small' }, 'Sign up')
        : h('a', { href: '/settings/billing', class: 'btn btn-primary btn-small' }, 'See plans'));
  }
  if (code === 'reply_in_progress') return h('div', { class: 'problem' }, 'A reply is still being written in this thread. Wait for it or stop it first.');
  if (code === 'unsupported_capability') return h('div', { class: 'problem' }, h('strong', null, 'This model cannot read that file. '), err.detail || '', ' Choose a model with vision or documents.');
  let detail = err.detail || err.message || 'Something went wrong.';
  const fields = p.errors ? Object.values(p.errors).flat().filter(Boolean) : [];
  if (fields.length) detail = fields.join('; ');
  return h('div', { class: 'problem' }, detail);
}
