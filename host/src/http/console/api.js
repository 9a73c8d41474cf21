// The admin API, as any client calls it: the admin key from this tab's
// sessionStorage in `x-functions-key` on every request, never in a URL.

const KEY = 'fnhost.console.adminKey';
const INPUTS = 'fnhost.console.inputs';

export const session = {
  key: () => sessionStorage.getItem(KEY),
  signIn: (key) => sessionStorage.setItem(KEY, key),
  signOut: () => { sessionStorage.removeItem(KEY); sessionStorage.removeItem(INPUTS); },
};

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** Handlers for a refused key; set by the app (it shows the login). */
export const hooks = { unauthorized: () => {} };

/**
 * `call('GET', '/admin/async-events', {query})`: the JSON answer, or an
 * `ApiError` naming the host's message. `raw: true` gives the Response.
 */
export async function call(method, path, { query, body, raw = false } = {}) {
  const key = session.key();
  if (!key) {
    hooks.unauthorized('Enter the admin key.');
    throw new ApiError(401, 'not signed in');
  }
  const headers = { 'x-functions-key': key };
  if (body !== undefined && typeof body !== 'string') {
    body = JSON.stringify(body);
    headers['content-type'] = 'application/json';
  }
  const url = query ? `${path}?${new URLSearchParams(query)}` : path;
  const res = await fetch(url, {
    method, headers, body, cache: 'no-store', credentials: 'omit', redirect: 'error',
  });
  if (res.status === 401) {
    hooks.unauthorized('The host refused the admin key (HTTP 401). Enter it again.');
    throw new ApiError(401, 'the admin key was refused');
  }
  if (raw) return res;
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  if (!res.ok) {
    throw new ApiError(res.status, `HTTP ${res.status}: ${json?.error?.message ?? text}`);
  }
  return json;
}

/** Checks a key before keeping it: true when the host accepts it. */
export async function tryKey(key) {
  const res = await fetch('/admin/host/status', {
    headers: { 'x-functions-key': key }, cache: 'no-store', credentials: 'omit',
  });
  if (res.status === 401) return false;
  if (!res.ok) throw new ApiError(res.status, `HTTP ${res.status} from /admin/host/status`);
  return true;
}

// No route gives an event's input back, so the console remembers the
// inputs it sent itself, in this tab only, for the detail view and re-run.
const MAX_REMEMBERED = 50;
const MAX_INPUT = 256 * 1024;

export function rememberInput(requestId, fn, input) {
  if (input.length > MAX_INPUT) return;
  let all = {};
  try { all = JSON.parse(sessionStorage.getItem(INPUTS)) ?? {}; } catch { /* reset */ }
  all[requestId] = { function: fn, input };
  const ids = Object.keys(all);
  for (const id of ids.slice(0, Math.max(0, ids.length - MAX_REMEMBERED))) delete all[id];
  try { sessionStorage.setItem(INPUTS, JSON.stringify(all)); } catch { /* full: forget */ }
}

export function rememberedInput(requestId) {
  try { return JSON.parse(sessionStorage.getItem(INPUTS))?.[requestId] ?? null; } catch { return null; }
}

/** Accepts an async event; remembers its input; answers its request id. */
export async function invokeAsync(fn, input) {
  const r = await call('POST', `/admin/functions/${encodeURIComponent(fn)}/invoke-async`, { body: input });
  rememberInput(r.requestId, fn, input);
  return r.requestId;
}

export const ENDED = ['FINISHED', 'FAILED', 'ABORTED'];
export const STATUSES = ['QUEUED', 'RUNNING', 'RETRYING', 'FINISHED', 'FAILED', 'ABORTED'];
