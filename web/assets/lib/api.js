// The app's one door to the server: same-origin fetches of the public API.
//
// The session lives in an HttpOnly cookie the page's scripts cannot read (a script injected
// through a message could not steal it). Unsafe requests carry the CSRF token from the
// readable `threadline_csrf` cookie in `X-CSRF-Token` (double submit); the server refuses a
// cookie-authenticated POST/PUT/PATCH/DELETE without it.

/** A problem+json answer (RFC 9457) as an error: `status`, `code`, `detail`, `problem`. */
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.code = problem?.code || `http_${status}`;
    this.detail = problem?.detail || '';
    this.problem = problem || {};
  }
}

/** The CSRF token of this browser's session (empty before the first sign-in). */
export function csrfToken() {
  const m = document.cookie.match(/(?:^|;\s*)threadline_csrf=([^;]+)/);
  return m ? decodeURIComponent(m[1]) : '';
}

const UNSAFE = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/**
 * Low-level fetch: returns the Response (for streams and downloads). `body` may be an object
 * (sent as JSON), FormData, Blob or string. Throws ApiError for 4xx/5xx answers.
 */
export async function request(method, path, { body, headers = {}, signal, query } = {}) {
  const h = { ...headers };
  if (UNSAFE.has(method)) h['X-CSRF-Token'] = csrfToken();
  let payload = body;
  if (body !== undefined && !(body instanceof FormData) && !(body instanceof Blob) && typeof body !== 'string') {
    payload = JSON.stringify(body);
    h['Content-Type'] = 'application/json';
  }
  let url = path;
  if (query) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== '') q.set(k, v);
    const s = q.toString();
    if (s) url += (url.includes('?') ? '&' : '?') + s;
  }
  const res = await fetch(url, { method, headers: h, body: payload, signal, credentials: 'same-origin' });
  if (res.status >= 400) {
    let problem = null;
    try { problem = await res.json(); } catch { /* not JSON */ }
    const err = new ApiError(res.status, problem);
    err.retryAfter = res.headers.get('retry-after');
    throw err;
  }
  return res;
}

/** JSON call: the parsed body, or null for 204. */
export async function api(method, path, options) {
  const res = await request(method, path, options);
  if (res.status === 204) return null;
  const type = res.headers.get('content-type') || '';
  return type.includes('json') ? res.json() : res.text();
}

export const get = (path, query, options = {}) => api('GET', path, { ...options, query });
export const post = (path, body, options = {}) => api('POST', path, { ...options, body });
export const put = (path, body, options = {}) => api('PUT', path, { ...options, body });
export const patch = (path, body, options = {}) => api('PATCH', path, { ...options, body });
export const del = (path, options = {}) => api('DELETE', path, options);

/** Asks the auth endpoints to set the session cookie instead of returning a bearer token. */
const COOKIE_SESSION = { 'X-Threadline-Session': 'cookie' };

/** The signed-in account (`GET /v1/me`), starting an anonymous session when there is none. */
export async function ensureSession() {
  try {
    return await get('/v1/me');
  } catch (e) {
    if (e.status !== 401) throw e;
  }
  await api('POST', '/v1/auth/anonymous', { headers: COOKIE_SESSION });
  return get('/v1/me');
}

/** Sign up; the anonymous account of this browser is linked into the new one. */
export function register(email, password, name) {
  return api('POST', '/v1/auth/register', { body: { email, password, name: name || undefined }, headers: COOKIE_SESSION });
}

/** Sign in; the anonymous account of this browser is linked into the signed-in one. */
export function login(email, password) {
  return api('POST', '/v1/auth/login', { body: { email, password }, headers: COOKIE_SESSION });
}

/** Sign out: the session is revoked and its cookies cleared. */
export function logout() {
  return api('POST', '/v1/auth/logout');
}

/** Paged list helper: follows `next_cursor` until `limit` items or the end. */
export async function listAll(path, query = {}, limit = 1000) {
  const out = [];
  let cursor;
  do {
    const page = await get(path, { ...query, cursor });
    out.push(...page.data);
    cursor = page.next_cursor;
  } while (cursor && out.length < limit);
  return out;
}
