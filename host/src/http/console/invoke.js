// Invoke a function with a body: synchronously (POST .../invoke, the
// answer shown as text with its outcome) or as an async event
// (POST .../invoke-async, then a link to the event).

import { el, fill } from './dom.js';
import { call, invokeAsync } from './api.js';

export function invoke(main, r) {
  const fn = el('select', { id: 'i-function', name: 'function', required: true });
  const body = el('textarea', { id: 'i-body', name: 'body', rows: 8, spellcheck: 'false' });
  const mode = (value, label, checked) => el('label', { class: 'inline' },
    el('input', { type: 'radio', name: 'mode', value, checked }), ` ${label}`);
  const result = el('section', { 'aria-live': 'polite', 'data-testid': 'invoke-result' });
  const form = el('form', { class: 'invoke', 'aria-labelledby': 'h-invoke' },
    el('div', { class: 'field' }, el('label', { for: 'i-function' }, 'Function'), fn),
    el('div', { class: 'field' }, el('label', { for: 'i-body' }, 'Body'), body),
    el('fieldset', {}, el('legend', {}, 'Mode'),
      mode('async', 'Asynchronous (an event)', true), mode('sync', 'Synchronous (wait for the answer)', false)),
    el('button', { type: 'submit', class: 'primary' }, 'Invoke'));
  fill(main, el('h1', { id: 'h-invoke' }, 'Invoke'), form, result);

  call('GET', '/admin/host/status').then((s) => {
    fill(fn, (s.functions ?? []).map((f) => el('option', { value: f, selected: f === r.params.get('function') }, f)));
  }).catch((e) => fill(result, el('p', { class: 'error' }, e.message)));

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const name = fn.value;
    const sync = new FormData(form).get('mode') === 'sync';
    fill(result, el('p', { class: 'hint' }, 'Invoking…'));
    try {
      if (!sync) {
        const id = await invokeAsync(name, body.value);
        fill(result, el('h2', {}, 'Accepted'), el('p', {}, 'Request id ',
          el('a', { href: `#/event/${encodeURIComponent(id)}`, class: 'mono', 'data-testid': 'new-event' }, id)));
        return;
      }
      const res = await call('POST', `/admin/functions/${encodeURIComponent(name)}/invoke`, { body: body.value, raw: true });
      const text = await res.text();
      fill(result, el('h2', {}, 'Answer'),
        el('dl', { class: 'facts' },
          el('div', {}, el('dt', {}, 'HTTP status'), el('dd', { 'data-testid': 'http-status' }, String(res.status))),
          el('div', {}, el('dt', {}, 'Outcome'), el('dd', {}, res.headers.get('x-fnhost-outcome') ?? '—')),
          el('div', {}, el('dt', {}, 'Invocation id'), el('dd', { class: 'mono' }, res.headers.get('x-fnhost-invocation-id') ?? '—'))),
        el('pre', { class: 'data', 'data-testid': 'sync-body' }, text));
    } catch (err) {
      if (err.status !== 401) fill(result, el('p', { class: 'error', role: 'alert' }, err.message));
    }
  });
}
