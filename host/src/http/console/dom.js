// DOM helpers. Everything that comes from the host (inputs, results,
// errors, log lines) is put into the page as text nodes, never parsed as
// HTML: this file is the only place that builds elements, and it has no
// innerHTML.

/** `el('td', {class: 'x'}, 'text', child)`: attributes and text or nodes. */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k.startsWith('on') && typeof v === 'function') node.addEventListener(k.slice(2), v);
    else if (k === 'value') node.value = v;
    else if (k === 'checked' || k === 'disabled' || k === 'selected') node[k] = Boolean(v);
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : String(c));
  }
}

/** Replaces the children of `node`. */
export function fill(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

/** `2026-12-04 14:41:37.902` in local time, or an em dash. */
export function when(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  const p = (n, w = 2) => String(n).padStart(w, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ` +
    `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

/** A duration in ms as `850 ms`, `12.3 s`, `4 min 2 s`, `3 h 5 min`. */
export function span(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return '—';
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.floor(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

/** A button that copies `text` to the clipboard, saying so when done. */
export function copyButton(text, label = 'Copy') {
  const b = el('button', { type: 'button', class: 'copy', 'aria-label': `${label}: ${text}` }, label);
  b.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(text);
      b.textContent = 'Copied';
    } catch {
      b.textContent = 'Copy failed';
    }
    setTimeout(() => { b.textContent = label; }, 1500);
  });
  return b;
}

/** A button that downloads `text` as a file named `name`. */
export function downloadLink(text, name, label) {
  // The object URL lives only for the click: views re-render every second.
  return el('button', {
    type: 'button',
    onclick: () => {
      const url = URL.createObjectURL(new Blob([text], { type: 'application/octet-stream' }));
      const a = el('a', { href: url, download: name, hidden: true });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 0);
    },
  }, label);
}

/** Status badge: `FAILED 430`. */
export function badge(status, code) {
  return el('span', { class: `badge s-${String(status).toLowerCase()}` },
    code ? `${status} ${code}` : String(status));
}

/**
 * A modal confirmation. `body` may hold form fields; resolves with true
 * when confirmed, false when cancelled (button or Escape).
 */
export function confirmDialog({ title, body = [], confirmLabel, danger = false }) {
  return new Promise((resolve) => {
    const ok = el('button', { type: 'button', class: danger ? 'danger' : 'primary' }, confirmLabel);
    const cancel = el('button', { type: 'button' }, 'Cancel');
    const dialog = el('dialog', { 'aria-labelledby': 'dialog-title' },
      el('h2', { id: 'dialog-title' }, title), body, el('div', { class: 'actions' }, cancel, ok));
    const close = (answer) => { dialog.close(); dialog.remove(); resolve(answer); };
    ok.addEventListener('click', () => close(true));
    cancel.addEventListener('click', () => close(false));
    dialog.addEventListener('cancel', (e) => { e.preventDefault(); close(false); });
    document.body.append(dialog);
    dialog.showModal();
    cancel.focus();
  });
}

/** True while the user has text selected (refreshing would drop it). */
export function selecting() {
  const s = document.getSelection();
  return Boolean(s && !s.isCollapsed && s.toString().trim() !== '');
}

/**
 * Calls `tick` now and then every `ms`, skipping a beat while text is
 * selected, the tab is hidden, or focus is inside `region` (a refresh
 * would move it). Returns a stop function.
 */
export function poll(tick, ms, region) {
  let timer = null;
  let stopped = false;
  const indicator = document.getElementById('refresh');
  const run = async () => {
    if (stopped) return;
    const paused = selecting() || (region && region.contains(document.activeElement) &&
      document.activeElement !== region);
    if (paused) {
      indicator.textContent = 'Auto-refresh paused while text is selected or focused';
    } else if (!document.hidden) {
      indicator.textContent = `Auto-refresh every ${ms / 1000} s`;
      try { await tick(); } catch { /* the view shows its own errors */ }
    }
    if (!stopped) timer = setTimeout(run, ms);
  };
  run();
  return () => { stopped = true; clearTimeout(timer); indicator.textContent = ''; };
}
