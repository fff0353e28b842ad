// The usage indicator near the composer (`[data-testid=usage]`): credits left today and when
// they reset, from `GET /v1/me/usage`; refreshed on the feed's usage.changed and after each
// reply. Emits ctx 'usage' with the usage object so other views can follow.

import { get } from '../lib/api.js';
import { h } from '../lib/dom.js';
import { onFeed } from '../lib/feed.js';
import { formatResetTime } from './ui.js';

export function createUsageIndicator(ctx) {
  const text = h('span', { class: 'usage-text' }, '');
  const el = h('a', { class: 'usage', 'data-testid': 'usage', href: '/settings/usage', 'aria-live': 'polite' }, text);
  let timer = null;
  let last = null;

  function paint(usage) {
    last = usage;
    const meter = usage?.meters?.find((m) => m.meter === 'credits');
    const purchased = usage?.purchased_credits || 0;
    el.classList.remove('low', 'out');
    if (!meter) {
      text.textContent = purchased ? `${purchased} purchased credits` : 'Unmetered';
      el.title = '';
      return;
    }
    const left = meter.remaining;
    const reset = formatResetTime(meter.resets_at);
    text.textContent = `${left} of ${meter.limit} credits left today · resets ${reset}` + (purchased ? ` · +${purchased} purchased` : '');
    el.title = `Credits reset ${reset}`;
    if (left === 0 && !purchased) el.classList.add('out');
    else if (left <= Math.max(1, Math.round(meter.limit * 0.2))) el.classList.add('low');
  }

  async function refresh() {
    try {
      const usage = await get('/v1/me/usage');
      paint(usage);
      ctx.emit('usage', usage);
    } catch { /* keep what is shown */ }
  }

  /** Refresh soon (coalesces bursts of feed items). */
  function soon(ms = 300) {
    clearTimeout(timer);
    timer = setTimeout(refresh, ms);
  }

  const off = onFeed((item) => { if (item.type === 'usage.changed') soon(); });
  refresh();
  return { el, refresh, soon, get usage() { return last; }, destroy() { off(); clearTimeout(timer); } };
}
