// The console's shell: sign-in, navigation, and one view at a time chosen
// by the URL's hash (`#/events?status=FAILED`), so a view can be shared.

import { el, fill } from './dom.js';
import { hooks, session, tryKey } from './api.js';
import { overview } from './overview.js';
import { events } from './events.js';
import { detail } from './detail.js';
import { invoke } from './invoke.js';

const views = { overview, events, event: detail, invoke };
const main = document.getElementById('main');
const nav = document.getElementById('nav');
const logout = document.getElementById('logout');
let stop = null;

/** `#/event/<id>?a=b` as `{view: 'event', arg: '<id>', params}`. */
export function route() {
  const hash = location.hash.replace(/^#/, '') || '/overview';
  const [path, query = ''] = hash.split('?');
  const [view, arg] = path.split('/').filter(Boolean);
  return { view: views[view] ? view : 'overview', arg: arg && decodeURIComponent(arg), params: new URLSearchParams(query) };
}

function leave() {
  if (stop) stop();
  stop = null;
}

function show() {
  leave();
  if (!session.key()) {
    login();
    return;
  }
  nav.hidden = false;
  logout.hidden = false;
  const r = route();
  for (const a of nav.querySelectorAll('a')) {
    const current = a.dataset.view === r.view || (r.view === 'event' && a.dataset.view === 'events');
    if (current) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  fill(main);
  stop = views[r.view](main, r) ?? null;
}

function login(message = '') {
  leave();
  nav.hidden = true;
  logout.hidden = true;
  const input = el('input', {
    id: 'admin-key', type: 'password', name: 'admin-key', autocomplete: 'off',
    required: true, spellcheck: 'false', 'aria-describedby': 'login-message',
  });
  const note = el('p', { id: 'login-message', class: message ? 'error' : 'hint', role: 'alert' },
    message || 'The key is kept in this tab only (sessionStorage) and sent as x-functions-key.');
  const form = el('form', { class: 'login', 'aria-labelledby': 'login-title' },
    el('h1', { id: 'login-title' }, 'Sign in'),
    el('label', { for: 'admin-key' }, 'Admin key'),
    input,
    el('button', { type: 'submit', class: 'primary' }, 'Sign in'),
    note);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const key = input.value;
    try {
      if (await tryKey(key)) {
        session.signIn(key);
        show();
        main.focus();
      } else {
        note.className = 'error';
        note.textContent = 'The host refused this admin key (HTTP 401).';
        input.select();
      }
    } catch (err) {
      note.className = 'error';
      note.textContent = `The host did not answer: ${err.message}`;
    }
  });
  fill(main, form);
  input.focus();
}

hooks.unauthorized = (message) => {
  session.signOut();
  login(message);
};
logout.addEventListener('click', () => {
  session.signOut();
  login('Signed out.');
});
window.addEventListener('hashchange', show);
show();
