// One event: its summary, error and stack traces, result, input (when this
// tab sent it), a timeline of attempts read from its [PLATFORM] lines, and
// its log, polled while it runs. Terminate and re-run, each confirmed.

import { badge, confirmDialog, copyButton, downloadLink, el, fill, poll, span, when } from './dom.js';
import { call, ENDED, invokeAsync, rememberedInput } from './api.js';

/** What the page shows of a long text; the download has all of it. */
const SHOWN = 4096;

function capped(text, name) {
  const long = text.length > SHOWN;
  return el('div', {},
    el('pre', { class: 'data' }, long ? text.slice(0, SHOWN) : text),
    long ? el('p', { class: 'hint' }, `Showing the first ${SHOWN} of ${text.length} characters. `,
      downloadLink(text, name, 'Download all')) : downloadLink(text, name, 'Download'));
}

/** Attempts from the log: `Invoke Start … (attempt N)` and the `Invoke End` after it. */
export function timeline(lines) {
  const attempts = [];
  for (const l of lines) {
    const start = /^\[PLATFORM\] Invoke Start RequestId: \S+ \(attempt (\d+)\)/.exec(l.line);
    if (start) {
      attempts.push({ n: Number(start[1]), start: l.time, end: null, outcome: 'running' });
      continue;
    }
    const end = /^\[PLATFORM\] Invoke End RequestId: [^;]+; (.*)$/s.exec(l.line);
    const last = attempts[attempts.length - 1];
    if (end && last && !last.end) {
      last.end = l.time;
      last.outcome = end[1];
    }
  }
  return attempts;
}

function stackTraces(lines) {
  return lines.map((l) => /Stack trace of attempt (\d+):\n([\s\S]*)$/.exec(l.line)).filter(Boolean)
    .map((m) => ({ n: m[1], trace: m[2] }));
}

function traceId(traceParent) {
  const parts = (traceParent ?? '').split('-');
  return parts.length === 4 ? parts[1] : null;
}

export function detail(main, r) {
  const id = r.arg ?? '';
  const path = `/admin/async-events/${encodeURIComponent(id)}`;
  const error = el('p', { class: 'error', role: 'alert' });
  const outcome = el('p', { class: 'outcome', role: 'status', 'data-testid': 'action-result' });
  const graceful = el('button', { type: 'button', disabled: true }, 'Terminate gracefully…');
  const forced = el('button', { type: 'button', class: 'danger', disabled: true }, 'Terminate (force)…');
  const rerun = el('button', { type: 'button', disabled: true }, 'Re-run as a new event…');
  const summary = el('section', { 'aria-labelledby': 'h-summary' }, el('p', { class: 'hint' }, 'Loading…'));
  const sections = el('div');
  const logList = el('ol', { class: 'log', 'aria-label': 'Log lines' });
  const live = el('span', { class: 'hint', 'data-testid': 'live' });
  let current = null;
  let stopped = false;
  let lastLines = [];

  fill(main,
    el('p', {}, el('a', { href: '#/events' }, '← Events')),
    el('h1', {}, 'Event ', el('span', { class: 'mono' }, id), ' ', copyButton(id)),
    error,
    el('div', { class: 'actions' }, graceful, forced, rerun),
    outcome,
    summary,
    sections,
    el('section', { 'aria-labelledby': 'h-log' }, el('h2', { id: 'h-log' }, 'Log ', live), logList));

  const terminate = async (grace) => {
    const ok = await confirmDialog({
      title: grace ? 'Terminate gracefully?' : 'Terminate (force)?',
      body: el('p', {}, grace
        ? 'The function is sent a cancel and given the cancel grace to stop; the event ends ABORTED.'
        : 'The worker instance running the event is killed (other invocations on it end killed and async ones are retried); the event ends ABORTED.'),
      confirmLabel: grace ? 'Terminate gracefully' : 'Terminate (force)',
      danger: true,
    });
    if (!ok) return;
    try {
      const res = await call('POST', `${path}/terminate`, { body: { graceShutdown: grace } });
      outcome.textContent = res.outcome === 'done'
        ? `Terminate (${grace ? 'graceful' : 'forced'}): done`
        : `Terminate: ${res.outcome}${res.status ? ` (the event is ${res.status})` : ''}`;
      await refresh();
    } catch (e) {
      outcome.textContent = `Terminate failed: ${e.message}`;
    }
  };
  graceful.addEventListener('click', () => terminate(true));
  forced.addEventListener('click', () => terminate(false));
  // The event's input, from the host (GET .../input), once per view; an
  // input this tab sent is at hand before it arrives.
  let hostInput = null;
  const inputOf = () => hostInput ?? rememberedInput(id);
  call('GET', `${path}/input`, { raw: true })
    .then(async (res) => {
      if (!res.ok) return;
      const kind = res.headers.get('x-fnhost-input-kind');
      hostInput = { input: await res.text(), kind };
      if (current) render(current, lastLines);
    })
    .catch(() => { /* shown as unavailable; the page keeps working */ });

  rerun.addEventListener('click', async () => {
    const known = inputOf();
    const area = el('textarea', { id: 'rerun-input', rows: 6, spellcheck: 'false' });
    area.value = known?.input ?? '';
    const ok = await confirmDialog({
      title: `Re-run ${current.function} as a new event?`,
      body: [
        el('p', {}, known
          ? 'The same input as this event:'
          : 'The event\'s input could not be read; enter the input to send:'),
        el('label', { for: 'rerun-input' }, 'Input'), area],
      confirmLabel: 'Re-run',
    });
    if (!ok) return;
    try {
      const newId = await invokeAsync(current.function, area.value);
      outcome.textContent = `Re-run accepted as ${newId}`;
      location.hash = `#/event/${encodeURIComponent(newId)}`;
    } catch (e) {
      outcome.textContent = `Re-run failed: ${e.message}`;
    }
  });

  const render = (e, lines) => {
    const ended = ENDED.includes(e.status);
    graceful.disabled = ended;
    forced.disabled = ended;
    rerun.disabled = false;
    for (const b of [graceful, forced]) b.title = ended ? `The event has ended (${e.status})` : '';
    const start = new Date(e.startTime).getTime();
    const end = e.endTime ? new Date(e.endTime).getTime() : null;
    const tid = traceId(e.traceParent);
    const pairs = [
      ['Status', el('span', { 'data-testid': 'event-status' }, badge(e.status, e.statusCode))],
      ['Function', e.function], ['Qualifier', e.qualifier], ['Invoke type', e.invokeType],
      ['Attempts', String(e.attempts)],
      ['Start', when(e.startTime)],
      ['End', end ? `${when(e.endTime)} (${span(end - start)})` : `running for ${span(Date.now() - start)}`],
      ['Next attempt', e.nextAttemptTime ? when(e.nextAttemptTime) : '—'],
      ['Owner host', e.ownerHost ?? 'this host'],
      ['Trace id', tid ? el('span', {}, el('code', { 'data-testid': 'trace-id' }, tid), ' ', copyButton(tid)) : '—'],
      ['traceparent', e.traceParent ? el('code', {}, e.traceParent) : '—'],
    ];
    fill(summary, el('h2', { id: 'h-summary' }, 'Summary'),
      el('dl', { class: 'facts' }, pairs.map(([k, v]) => el('div', {}, el('dt', {}, k), el('dd', {}, v)))));

    lastLines = lines;
    const known = inputOf();
    const attempts = timeline(lines);
    const traces = stackTraces(lines);
    fill(sections,
      e.error ? el('section', { 'aria-labelledby': 'h-error' }, el('h2', { id: 'h-error' }, 'Error'),
        el('pre', { class: 'data', 'data-testid': 'error' }, e.error)) : null,
      traces.length ? el('section', { 'aria-labelledby': 'h-stack' }, el('h2', { id: 'h-stack' }, 'Stack trace'),
        traces.map((t) => el('div', {}, el('h3', {}, `Attempt ${t.n}`), el('pre', { class: 'data' }, t.trace)))) : null,
      e.result !== null && e.result !== undefined ? el('section', { 'aria-labelledby': 'h-result' },
        el('h2', { id: 'h-result' }, 'Result'), capped(e.result, `${id}.result`)) : null,
      el('section', { 'aria-labelledby': 'h-input' }, el('h2', { id: 'h-input' }, 'Input'),
        known ? [known.kind ? el('p', { class: 'hint' }, `As the host stored it (${known.kind}):`) : el('p', { class: 'hint' }, 'As sent from this tab:'),
          capped(known.input, `${id}.input`)]
          : el('p', { class: 'hint' }, 'Reading the input from the host…')),
      el('section', { 'aria-labelledby': 'h-attempts' }, el('h2', { id: 'h-attempts' }, 'Attempts'),
        attempts.length ? el('ol', { class: 'timeline' }, attempts.map((a) => el('li', {},
          el('strong', {}, `Attempt ${a.n}`), ` ${when(a.start)} → ${a.end ? when(a.end) : 'running'}`,
          a.end ? ` (${span(new Date(a.end) - new Date(a.start))})` : '', el('div', { class: 'data' }, a.outcome))))
          : el('p', { class: 'hint' }, e.nextAttemptTime ? `Next attempt at ${when(e.nextAttemptTime)}.` : 'No attempt has started.')));

    // Lines are appended, never rewritten: keep the ones shown.
    if (lines.length < logList.children.length) logList.replaceChildren();
    for (const l of lines.slice(logList.children.length)) {
      logList.append(el('li', { class: l.line.startsWith('[PLATFORM]') ? 'platform' : 'user' },
        el('time', { datetime: l.time }, when(l.time)), ' ', el('span', { class: 'line' }, l.line)));
    }
    live.textContent = ended ? '' : '(live, every second)';
  };

  const refresh = async () => {
    try {
      const [e, logs] = await Promise.all([call('GET', path), call('GET', `${path}/logs`)]);
      error.textContent = '';
      current = e;
      render(e, logs.lines);
      if (ENDED.includes(e.status) && !stopped) { stopped = true; stopPoll(); }
    } catch (err) {
      if (err.status !== 401) error.textContent = err.message;
    }
  };
  const stopPoll = poll(refresh, 1000, sections);
  return () => { stopped = true; stopPoll(); };
}
