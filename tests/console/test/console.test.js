// Browser tests of the web console against a real host, in Debian's
// Chromium. The host is started by tests/tests/e2e/console.rs, which passes
// its address and admin key as FNHOST_CONSOLE_URL and FNHOST_CONSOLE_KEY.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const BASE = process.env.FNHOST_CONSOLE_URL;
const KEY = process.env.FNHOST_CONSOLE_KEY;
const CHROMIUM = process.env.FNHOST_CHROMIUM ?? '/usr/bin/chromium';
const SHOTS = join(dirname(fileURLToPath(import.meta.url)), '..', 'screenshots');

let browser;
let page;
/** Admin requests the page made, and whether each carried the key. */
const adminRequests = [];
const pageErrors = [];

async function api(method, path, body) {
  const res = await fetch(`${BASE}${path}`, { method, body, headers: { 'x-functions-key': KEY } });
  const text = await res.text();
  assert.ok(res.ok, `${method} ${path}: ${res.status} ${text}`);
  return JSON.parse(text);
}

async function waitForStatus(id, status) {
  for (let i = 0; i < 400; i++) {
    const e = await api('GET', `/admin/async-events/${id}`);
    if (e.status === status) return e;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`event ${id} did not become ${status}`);
}

async function shot(name) {
  await page.screenshot({ path: join(SHOTS, `${name}.png`) });
}

async function signIn(key) {
  await page.goto(`${BASE}/console`);
  // By keyboard: the key field has focus; Enter submits.
  await page.waitForSelector('#admin-key:focus');
  await page.keyboard.type(key);
  await page.keyboard.press('Enter');
}

before(async () => {
  assert.ok(BASE && KEY, 'FNHOST_CONSOLE_URL and FNHOST_CONSOLE_KEY must be set (run through tests/tests/e2e/console.rs)');
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install -y chromium`);
  mkdirSync(SHOTS, { recursive: true });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: BASE });
  page = await context.newPage();
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('request', (r) => {
    const url = new URL(r.url());
    assert.ok(!r.url().includes(KEY), `the key is never in a URL: ${r.url()}`);
    if (url.pathname.startsWith('/admin/')) adminRequests.push({ path: url.pathname, key: r.headers()['x-functions-key'] });
  });
});

after(async () => {
  await browser?.close();
});

test('the page and its files are public and carry a strict policy; the data needs the key', async () => {
  for (const path of ['/console', '/console/app.js', '/console/console.css', '/console/nope.js']) {
    const res = await fetch(`${BASE}${path}`);
    assert.equal(res.status, path.includes('nope') ? 404 : 200, path);
    const csp = res.headers.get('content-security-policy');
    assert.match(csp, /default-src 'self'/);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
    assert.equal(res.headers.get('referrer-policy'), 'no-referrer');
  }
  const html = await (await fetch(`${BASE}/console`)).text();
  assert.ok(!html.includes(KEY));
  assert.equal((await fetch(`${BASE}/admin/async-events`)).status, 401);
});

test('a wrong key is refused with a clear message and not kept', async () => {
  await signIn('not-the-key');
  await page.getByText('The host refused this admin key (HTTP 401).').waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.length), 0);
  assert.ok(await page.locator('#nav').isHidden());
});

test('signing in shows the overview: host state, instances, budgets, async backlog', async () => {
  await signIn(KEY);
  await page.locator('[data-testid=host-state]').filter({ hasText: 'running' }).waitFor();
  await page.getByRole('heading', { name: 'Instances' }).waitFor();
  await page.getByRole('heading', { name: 'Restart budgets' }).waitFor();
  await page.getByText('Oldest queued').waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.getItem('fnhost.console.adminKey')), KEY);
  assert.ok(!page.url().includes(KEY));
  // Auto-refresh stops while text is selected.
  await page.evaluate(() => {
    getSelection().selectAllChildren(document.querySelector('h1'));
  });
  await page.getByText('Auto-refresh paused').waitFor();
  await page.evaluate(() => getSelection().removeAllRanges());
  await page.getByText('Auto-refresh every 2 s').waitFor();
  await shot('overview');
});

test('a running sleep event: filter by status, open it, watch its log, terminate it gracefully', async () => {
  const { requestId: id } = await api('POST', '/admin/functions/sleep/invoke-async', '60000');
  await waitForStatus(id, 'RUNNING');
  await page.getByRole('link', { name: 'Events', exact: true }).click();
  await page.getByTestId('tab-RUNNING').click();
  await page.waitForURL(/status=RUNNING/);
  const row = page.locator(`tr[data-request-id="${id}"]`);
  await row.getByTestId('status').filter({ hasText: 'RUNNING' }).waitFor();
  // The filter lives in the URL: a reload (a shared link) shows the same view.
  await page.reload();
  await row.waitFor();
  assert.equal(await page.locator('tbody tr[data-request-id]').count(), 1);
  await page.locator('#f-function').selectOption('echo');
  await page.getByRole('button', { name: 'Apply' }).click();
  await page.waitForURL(/function=echo/);
  await page.getByText('No events match.').waitFor();
  await page.goBack();
  await row.waitFor();
  await shot('list');

  await row.getByRole('link', { name: id }).click();
  await page.getByText(/^\[PLATFORM\] Invoke Start RequestId: .* \(attempt 1\)$/).waitFor();
  await page.getByTestId('live').filter({ hasText: 'live' }).waitFor();
  await page.getByTestId('trace-id').waitFor();

  await page.getByRole('button', { name: 'Terminate gracefully…' }).click();
  const dialog = page.getByRole('dialog');
  await dialog.getByRole('button', { name: 'Cancel' }).click();
  assert.equal((await api('GET', `/admin/async-events/${id}`)).status, 'RUNNING', 'cancelled: nothing sent');
  await page.getByRole('button', { name: 'Terminate gracefully…' }).click();
  await dialog.getByRole('button', { name: 'Terminate gracefully' }).click();
  await page.getByTestId('action-result').filter({ hasText: 'Terminate (graceful): done' }).waitFor();
  await page.getByTestId('event-status').filter({ hasText: 'ABORTED 438' }).waitFor();
  await page.getByText('[PLATFORM] Signal received successfully.', { exact: true }).waitFor();
  await page.getByText(/sleep cancelled after \d+ ms \(terminate\)/).waitFor();
  assert.ok(await page.getByRole('button', { name: 'Terminate gracefully…' }).isDisabled());
  assert.ok(await page.getByRole('button', { name: 'Terminate (force)…' }).isDisabled());
  await shot('detail');
});

test('a failed event sent from the console is re-run as a new event with the same input', async () => {
  await page.getByRole('link', { name: 'Invoke', exact: true }).click();
  await page.locator('#i-function').selectOption('fail');
  await page.locator('#i-body').fill('boom 42');
  await page.getByRole('button', { name: 'Invoke' }).click();
  const link = page.getByTestId('new-event');
  const first = await link.textContent();
  await link.click();
  await page.getByTestId('event-status').filter({ hasText: 'FAILED 430' }).waitFor();
  await page.getByTestId('error').filter({ hasText: 'failure requested: boom 42' }).waitFor();
  await page.locator('ol.timeline li').nth(1).waitFor();
  await page.getByRole('button', { name: 'Re-run as a new event…' }).click();
  const dialog = page.getByRole('dialog');
  assert.equal(await dialog.locator('textarea').inputValue(), 'boom 42');
  await dialog.getByRole('button', { name: 'Re-run' }).click();
  await page.waitForURL((u) => u.hash.startsWith('#/event/') && !u.hash.includes(first));
  const second = decodeURIComponent(new URL(page.url()).hash.slice('#/event/'.length));
  const e = await waitForStatus(second, 'FAILED');
  assert.equal(e.function, 'fail');
  assert.match(e.error, /failure requested: boom 42/);
  await page.getByTestId('event-status').filter({ hasText: 'FAILED 430' }).waitFor();
});

test('a synchronous invoke shows the answer as text', async () => {
  await page.getByRole('link', { name: 'Invoke', exact: true }).click();
  await page.locator('#i-function').selectOption('echo');
  await page.locator('#i-body').fill('hello <b>there</b>');
  await page.getByLabel('Synchronous (wait for the answer)').check();
  await page.getByRole('button', { name: 'Invoke' }).click();
  await page.getByTestId('http-status').filter({ hasText: '200' }).waitFor();
  assert.equal(await page.getByTestId('sync-body').textContent(), 'hello <b>there</b>');
});

test('event data is shown as text: markup in an input, error, result or log never runs', async () => {
  const payload = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>';
  const { requestId: failed } = await api('POST', '/admin/functions/fail/invoke-async', payload);
  const { requestId: echoed } = await api('POST', '/admin/functions/echo/invoke-async', payload);
  await waitForStatus(failed, 'FAILED');
  await waitForStatus(echoed, 'FINISHED');
  for (const id of [failed, echoed]) {
    await page.goto(`${BASE}/console#/event/${id}`);
    await page.getByText(payload, { exact: false }).first().waitFor();
  }
  await page.goto(`${BASE}/console#/events`);
  await page.locator(`tr[data-request-id="${echoed}"]`).waitFor();
  assert.equal(await page.evaluate(() => window.__xss), undefined);
  assert.equal(await page.locator('main img, main script, main b').count(), 0);

  // An event this tab did not send: its input comes from the host
  // (GET .../input), as text, and a re-run offers it; the download is the
  // whole result.
  await page.goto(`${BASE}/console#/event/${echoed}`);
  const download = page.waitForEvent('download');
  await page.locator('section:has(#h-result)').getByRole('button', { name: 'Download' }).click();
  const file = await download;
  assert.equal(file.suggestedFilename(), `${echoed}.result`);
  await page.getByRole('button', { name: 'Re-run as a new event…' }).click();
  await page.locator('section:has(#h-input)').getByText('As the host stored it').waitFor();
  const dialog = page.getByRole('dialog');
  await dialog.getByText('The same input as this event').waitFor();
  assert.equal(await dialog.locator('textarea').inputValue(), payload);
  await page.keyboard.press('Escape');
  assert.equal(await page.evaluate(() => window.__xss), undefined);
  assert.equal(await page.getByRole('dialog').count(), 0);
});

test('a forced terminate ends a running event ABORTED/439', async () => {
  const { requestId: id } = await api('POST', '/admin/functions/sleep/invoke-async', '60000');
  await waitForStatus(id, 'RUNNING');
  await page.goto(`${BASE}/console#/event/${id}`);
  await page.getByText(/^\[PLATFORM\] Invoke Start/).waitFor();
  await page.getByRole('button', { name: 'Terminate (force)…' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Terminate (force)' }).click();
  await page.getByTestId('action-result').filter({ hasText: 'Terminate (forced): done' }).waitFor();
  await page.getByTestId('event-status').filter({ hasText: 'ABORTED 439' }).waitFor();

  // Found by its whole request id (the API's filter) and by a part of it:
  // its random end (a v7 id begins with its time, which the other events
  // of this run share).
  for (const q of [id, id.slice(-8)]) {
    await page.goto(`${BASE}/console#/events?requestId=${q}`);
    await page.locator(`tr[data-request-id="${id}"]`).getByTestId('status')
      .filter({ hasText: 'ABORTED 439' }).waitFor();
    assert.equal(await page.locator('tbody tr[data-request-id]').count(), 1);
    assert.equal(await page.locator('#f-requestId').inputValue(), q);
  }
});

test('readable at phone width', async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(`${BASE}/console#/events`);
  await page.locator('tbody tr[data-request-id]').first().waitFor();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(overflow <= 1, `the page scrolls sideways by ${overflow} px`);
  await shot('list-phone');
  await page.setViewportSize({ width: 1280, height: 800 });
});

test('every data call sent the key, and no script failed', () => {
  assert.ok(adminRequests.length > 20, `${adminRequests.length} admin requests`);
  const keyed = adminRequests.filter((r) => r.key === KEY).length;
  // The only calls without the right key: the wrong-key sign-in's check.
  const others = adminRequests.filter((r) => r.key !== KEY);
  assert.deepEqual(others.map((r) => [r.path, r.key]), [['/admin/host/status', 'not-the-key']]);
  assert.ok(keyed > 20);
  assert.deepEqual(pageErrors, []);
});
