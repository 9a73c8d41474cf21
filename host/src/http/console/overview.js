// Overview: the host's state, its instances and restart budgets, the async
// backlog and, on a shared PostgreSQL store, the hosts and their heartbeats.
// All from GET /admin/host/status and GET /admin/async-events.

import { el, fill, poll, span, when } from './dom.js';
import { call, STATUSES } from './api.js';

function table(caption, headers, rows, empty) {
  if (rows.length === 0) return el('p', { class: 'hint' }, empty);
  return el('div', { class: 'scroll' }, el('table', {},
    el('caption', {}, caption),
    el('thead', {}, el('tr', {}, headers.map((h) => el('th', { scope: 'col' }, h)))),
    el('tbody', {}, rows.map((r) => el('tr', {}, r.map((c) => el('td', {}, c ?? '—')))))));
}

function facts(pairs) {
  return el('dl', { class: 'facts' }, pairs.map(([k, v]) => el('div', {}, el('dt', {}, k), el('dd', {}, v ?? '—'))));
}

async function statusCounts() {
  const counts = await Promise.all(STATUSES.map((s) =>
    call('GET', '/admin/async-events', { query: { status: s, limit: '0' } }).then((r) => r.totalCount)));
  const oldest = await call('GET', '/admin/async-events', { query: { status: 'QUEUED', order: 'asc', limit: '1' } });
  const first = oldest.events[0];
  return { counts, oldestAge: first ? Date.now() - new Date(first.startTime).getTime() : null, oldest: first };
}

function render(region, s, q) {
  const a = s.asyncEvents ?? {};
  const cluster = s.cluster;
  fill(region,
    el('section', { 'aria-labelledby': 'h-host' },
      el('h2', { id: 'h-host' }, 'Host'),
      facts([
        ['State', el('span', { class: `badge h-${s.state}`, 'data-testid': 'host-state' }, s.state)],
        ['Uptime', span((s.uptimeSeconds ?? 0) * 1000)],
        ['Language', s.language],
        ['In flight', String(s.inFlight ?? 0)],
        ['Queued (sync)', String(s.queued ?? 0)],
        ['Functions', (s.functions ?? []).join(', ')],
      ])),
    el('section', { 'aria-labelledby': 'h-async' },
      el('h2', { id: 'h-async' }, 'Async events'),
      el('ul', { class: 'counts' }, STATUSES.map((st, i) => el('li', {},
        el('a', { href: `#/events?status=${st}`, 'data-testid': `count-${st}` },
          el('span', { class: `badge s-${st.toLowerCase()}` }, st), ' ', String(q.counts[i]))))),
      facts([
        ['Oldest queued', q.oldest ? `${span(q.oldestAge)} (${when(q.oldest.startTime)})` : 'none queued'],
        ['Running now', String(a.running ?? '—')],
        ['Waiting to retry', String(a.waiting ?? '—')],
        ['Queued in memory', String(a.queuedInMemory ?? '—')],
        ['Backlog in store only', a.backlogInStore ? 'yes' : 'no'],
        ['Retries in store only', a.retriesInStore ? 'yes' : 'no'],
      ])),
    el('section', { 'aria-labelledby': 'h-instances' },
      el('h2', { id: 'h-instances' }, 'Instances'),
      table('Worker instances', ['Slot', 'Worker', 'PID', 'State', 'In flight', 'Served', 'Age', 'Cancel', 'Last error'],
        (s.workers ?? []).map((w) => [String(w.slot), w.workerId, String(w.pid ?? '—'),
          el('span', { class: `badge w-${w.state}` }, w.state), String(w.inFlight), String(w.served),
          span((w.ageSeconds ?? 0) * 1000), w.handlesCancel ? 'yes' : 'no', w.lastError]),
        'No instance is running.')),
    el('section', { 'aria-labelledby': 'h-budgets' },
      el('h2', { id: 'h-budgets' }, 'Restart budgets'),
      table('Restart budget per slot', ['Slot', 'Worker', 'Recent restarts', 'Budget', 'Last error'],
        (s.slots ?? []).map((sl) => [String(sl.slot), sl.workerId, String(sl.recentRestarts),
          sl.budgetExhausted ? el('span', { class: 'badge s-failed' }, 'exhausted') : 'ok', sl.lastError]),
        'No slots.')),
    el('section', { 'aria-labelledby': 'h-outcomes' },
      el('h2', { id: 'h-outcomes' }, 'Invocation outcomes'),
      Object.keys(s.outcomes ?? {}).length
        ? facts(Object.entries(s.outcomes).map(([k, v]) => [k, String(v)]))
        : el('p', { class: 'hint' }, 'No invocation has ended yet.')),
    cluster ? el('section', { 'aria-labelledby': 'h-cluster' },
      el('h2', { id: 'h-cluster' }, 'Hosts sharing the event store'),
      el('p', {}, 'This host: ', el('code', {}, cluster.hostId ?? '—')),
      cluster.error ? el('p', { class: 'error' }, cluster.error) : table('Hosts and heartbeats',
        ['Host', 'Address', 'Epoch', 'Last heartbeat', 'Age', 'Draining', 'Dead'],
        (cluster.hosts ?? []).map((h) => [h.id, h.address, String(h.epoch),
          h.heartbeatMs ? when(new Date(h.heartbeatMs).toISOString()) : '—',
          h.heartbeatAgeSeconds === undefined ? '—' : span(h.heartbeatAgeSeconds * 1000),
          h.draining ? 'yes' : 'no', h.dead ? el('span', { class: 'badge s-failed' }, 'dead') : 'no']),
        'No hosts registered.')) : null);
}

export function overview(main) {
  const error = el('p', { class: 'error', role: 'alert' });
  const region = el('div', { class: 'overview' }, el('p', { class: 'hint' }, 'Loading…'));
  fill(main, el('h1', {}, 'Overview'), error, region);
  return poll(async () => {
    try {
      const [s, q] = await Promise.all([call('GET', '/admin/host/status'), statusCounts()]);
      error.textContent = '';
      render(region, s, q);
    } catch (e) {
      if (e.status !== 401) error.textContent = e.message;
    }
  }, 2000, region);
}
