// The events list: status tabs with counts, filters, sorting and paging,
// all kept in the URL's hash so a view can be shared. Rows come from
// GET /admin/async-events; the attempt count from each event's GET (the
// list does not carry it), cached once an event has ended.

import { badge, copyButton, el, fill, poll, span, when } from './dom.js';
import { call, ENDED, STATUSES } from './api.js';

const FILTERS = ['function', 'invokeType', 'requestId', 'startTimeFrom', 'startTimeTo', 'endTimeFrom', 'endTimeTo'];
const INVOKE_TYPES = ['api', 'scf', 'timer', 'onFailure'];
const FULL_ID = 36;
const attemptsCache = new Map();

/** The view's state from the hash's query. */
function state(params) {
  const s = {};
  for (const k of [...FILTERS, 'status', 'orderBy', 'order']) s[k] = params.get(k) ?? '';
  s.offset = Math.max(0, Number.parseInt(params.get('offset') ?? '0', 10) || 0);
  s.limit = [20, 50, 100].includes(Number(params.get('limit'))) ? Number(params.get('limit')) : 20;
  return s;
}

function hashOf(s) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(s)) {
    if (v !== '' && v !== null && v !== undefined && !(k === 'offset' && v === 0) && !(k === 'limit' && v === 20)) q.set(k, v);
  }
  const text = q.toString();
  return text ? `#/events?${text}` : '#/events';
}

/** API parameters for `s` (a request id shorter than a full one is a part of one, matched here). */
function query(s, status = s.status) {
  const q = {};
  for (const k of FILTERS) {
    if (!s[k]) continue;
    if (k === 'requestId' && s[k].length < FULL_ID) continue;
    q[k] = k.endsWith('From') || k.endsWith('To') ? new Date(s[k]).toISOString() : s[k];
  }
  if (status) q.status = status;
  if (s.orderBy) q.orderBy = s.orderBy;
  if (s.order) q.order = s.order;
  return q;
}

async function attemptsOf(e) {
  const cached = attemptsCache.get(e.requestId);
  if (cached) return cached;
  const d = await call('GET', `/admin/async-events/${encodeURIComponent(e.requestId)}`);
  const max = /attempts exhausted: \d+ of (\d+)/.exec(d.error ?? '')?.[1];
  const text = max ? `${d.attempts} of ${max}` : String(d.attempts);
  if (ENDED.includes(d.status)) attemptsCache.set(e.requestId, text);
  return text;
}

function row(e, attempts) {
  const start = new Date(e.startTime).getTime();
  const end = e.endTime ? new Date(e.endTime).getTime() : null;
  const link = el('a', { href: `#/event/${encodeURIComponent(e.requestId)}`, class: 'mono' }, e.requestId);
  return el('tr', { 'data-request-id': e.requestId },
    el('td', {}, link, ' ', copyButton(e.requestId)),
    el('td', {}, e.function),
    el('td', {}, e.qualifier),
    el('td', {}, e.invokeType),
    el('td', { 'data-testid': 'status' }, badge(e.status, e.statusCode)),
    el('td', {}, attempts),
    el('td', {}, when(e.startTime)),
    el('td', {}, end ? `${when(e.endTime)} (${span(end - start)})`
      : `${e.status === 'RUNNING' ? 'running' : 'waiting'} for ${span(Date.now() - start)}`),
    el('td', {}, e.ownerHost ?? 'this host'));
}

function filterForm(s, functions) {
  const field = (name, label, input) => el('div', { class: 'field' }, el('label', { for: `f-${name}` }, label), input);
  const text = (name, props = {}) => el('input', { id: `f-${name}`, name, value: s[name], ...props });
  const select = (name, options) => el('select', { id: `f-${name}`, name },
    el('option', { value: '' }, 'any'),
    options.map((o) => el('option', { value: o, selected: o === s[name] }, o)));
  const localTime = (v) => {
    if (!v) return '';
    const d = new Date(v);
    if (Number.isNaN(d.getTime())) return '';
    return new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 19);
  };
  const time = (name) => el('input', { id: `f-${name}`, name, type: 'datetime-local', step: '1', value: localTime(s[name]) });
  const form = el('form', { class: 'filters', 'aria-label': 'Filters' },
    field('function', 'Function', select('function', functions)),
    field('status', 'Status', select('status', STATUSES)),
    field('invokeType', 'Invoke type', select('invokeType', INVOKE_TYPES)),
    field('requestId', 'Request id or part of one', text('requestId', { spellcheck: 'false', autocomplete: 'off' })),
    field('startTimeFrom', 'Started from', time('startTimeFrom')),
    field('startTimeTo', 'Started before', time('startTimeTo')),
    field('endTimeFrom', 'Ended from', time('endTimeFrom')),
    field('endTimeTo', 'Ended before', time('endTimeTo')),
    field('orderBy', 'Sort by', el('select', { id: 'f-orderBy', name: 'orderBy' },
      el('option', { value: 'startTime', selected: s.orderBy !== 'endTime' }, 'start time'),
      el('option', { value: 'endTime', selected: s.orderBy === 'endTime' }, 'end time'))),
    field('order', 'Order', el('select', { id: 'f-order', name: 'order' },
      el('option', { value: 'desc', selected: s.order !== 'asc' }, 'newest first'),
      el('option', { value: 'asc', selected: s.order === 'asc' }, 'oldest first'))),
    field('limit', 'Per page', el('select', { id: 'f-limit', name: 'limit' },
      [20, 50, 100].map((n) => el('option', { value: n, selected: n === s.limit }, String(n))))),
    el('div', { class: 'field buttons' },
      el('button', { type: 'submit', class: 'primary' }, 'Apply'),
      el('a', { href: '#/events', class: 'button' }, 'Clear')));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const data = new FormData(form);
    const next = { offset: 0 };
    for (const [k, v] of data) next[k] = typeof v === 'string' ? v.trim() : '';
    for (const k of ['startTimeFrom', 'startTimeTo', 'endTimeFrom', 'endTimeTo']) {
      if (next[k]) next[k] = new Date(next[k]).toISOString();
    }
    next.limit = Number(next.limit);
    if (next.order === 'desc') next.order = '';
    if (next.orderBy === 'startTime') next.orderBy = '';
    location.hash = hashOf(next);
  });
  return form;
}

export function events(main, r) {
  const s = state(r.params);
  const tabs = el('nav', { class: 'tabs', 'aria-label': 'Status' });
  const error = el('p', { class: 'error', role: 'alert' });
  const note = el('p', { class: 'hint' });
  const body = el('tbody', {}, el('tr', {}, el('td', { colspan: 9 }, 'Loading…')));
  const pager = el('div', { class: 'pager' });
  const formSlot = el('div');
  const region = el('div', {},
    el('div', { class: 'scroll' }, el('table', { class: 'events' },
      el('caption', {}, 'Async events'),
      el('thead', {}, el('tr', {}, ['Request id', 'Function', 'Qualifier', 'Invoke type', 'Status',
        'Attempts', 'Start', 'End (duration)', 'Owner host'].map((h) => el('th', { scope: 'col' }, h)))),
      body)),
    pager);
  fill(main, el('h1', {}, 'Events'), tabs, formSlot, error, note, region);
  call('GET', '/admin/host/status').then((st) => fill(formSlot, filterForm(s, st.functions ?? [])))
    .catch(() => fill(formSlot, filterForm(s, [])));

  // Event ids are v7 UUIDs: they begin with their time, so events of the
  // same minute share a beginning and the random end tells them apart.
  // Any part of an id matches.
  const part = s.requestId && s.requestId.length < FULL_ID ? s.requestId.toLowerCase() : '';
  const tick = async () => {
    try {
      const counts = await Promise.all(['', ...STATUSES].map((st) =>
        call('GET', '/admin/async-events', { query: { ...query(s, st), limit: '0' } }).then((x) => x.totalCount)));
      const limit = part ? 100 : s.limit;
      const page = await call('GET', '/admin/async-events',
        { query: { ...query(s), offset: String(s.offset), limit: String(limit) } });
      const shown = part ? page.events.filter((e) => e.requestId.includes(part)) : page.events;
      const attempts = await Promise.all(shown.map((e) => attemptsOf(e).catch(() => '?')));
      error.textContent = '';
      fill(tabs, ['', ...STATUSES].map((st, i) => el('a', {
        href: hashOf({ ...s, status: st, offset: 0 }),
        'aria-current': s.status === st ? 'page' : null,
        'data-testid': `tab-${st || 'ALL'}`,
      }, st || 'ALL', ' ', el('span', { class: 'count' }, String(counts[i])))));
      note.textContent = part
        ? `Request ids containing “${part}” among the ${page.events.length} events of this page (the API matches whole ids only).`
        : '';
      fill(body, shown.length ? shown.map((e, i) => row(e, attempts[i]))
        : el('tr', {}, el('td', { colspan: 9 }, 'No events match.')));
      const from = page.totalCount === 0 ? 0 : s.offset + 1;
      const to = s.offset + page.events.length;
      const prev = el('a', { href: hashOf({ ...s, offset: Math.max(0, s.offset - limit) }), class: 'button', rel: 'prev' }, '← Newer page');
      const next = el('a', { href: hashOf({ ...s, offset: s.offset + limit }), class: 'button', rel: 'next' }, 'Older page →');
      if (s.order === 'asc') { prev.textContent = '← Previous page'; next.textContent = 'Next page →'; }
      fill(pager, s.offset > 0 ? prev : null,
        el('span', {}, `${from}–${to} of ${page.totalCount}`),
        to < page.totalCount ? next : null);
    } catch (e) {
      if (e.status !== 401) error.textContent = e.message;
    }
  };
  return poll(tick, 3000, region);
}
