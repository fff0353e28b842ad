// The account's live feed (`GET /v1/events`, SSE) shared by every view: thread changes, usage,
// preferences and typing from this and the account's other tabs and devices. EventSource sends
// the session cookie and reconnects by itself with `Last-Event-ID`, so nothing is missed.

const listeners = new Set();
const statusListeners = new Set();
let source = null;
let status = 'connecting';

/** Subscribes to feed items (`{type, ...}`); returns the unsubscribe function. */
export function onFeed(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

/** Subscribes to the connection status: 'connecting' | 'online' | 'offline'. */
export function onStatus(fn) {
  statusListeners.add(fn);
  fn(status);
  return () => statusListeners.delete(fn);
}

function setStatus(next) {
  if (next === status) return;
  status = next;
  for (const fn of statusListeners) fn(status);
}

/** Opens the feed (again, after a sign-in changes the account). */
export function connectFeed() {
  if (source) source.close();
  setStatus('connecting');
  source = new EventSource('/v1/events');
  source.onopen = () => setStatus('online');
  source.onerror = () => setStatus(navigator.onLine ? 'connecting' : 'offline');
  source.onmessage = (ev) => {
    let item;
    try { item = JSON.parse(ev.data); } catch { return; }
    if (item.type === 'ready') setStatus('online');
    for (const fn of listeners) {
      try { fn(item); } catch (e) { console.error(e); }
    }
  };
}

window.addEventListener('offline', () => setStatus('offline'));
window.addEventListener('online', () => { if (source?.readyState === EventSource.CLOSED) connectFeed(); });
