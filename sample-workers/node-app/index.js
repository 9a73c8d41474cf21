'use strict';
/**
 * fnhost Node sample worker: small functions that exercise the host —
 * success, long runs that honour or ignore cancellation, exceptions,
 * crashes, failures and logging. Mirrors the Rust sample worker
 * (`sample-workers/rust-worker`).
 *
 * Launched by the host through `worker.config.json`; run
 * `sample-workers/node/setup.sh` once to install the SDK's dependencies.
 */

const { setTimeout: sleepFor } = require('node:timers/promises');
const { Worker, HttpResponse } = require('../node/lib');

/**
 * Returns the input: HTTP requests get a 200 with the same body and content
 * type; JSON text comes back as JSON, other text as text.
 *
 * @type {import('../node/lib/dispatcher').Handler}
 */
function echo(context, input) {
  const http = input.http;
  if (http) {
    const response = new HttpResponse(200, { body: input.bytes() });
    const contentType = Object.entries(http.headers || {}).find(([k]) => k.toLowerCase() === 'content-type');
    if (contentType) response.header('content-type', contentType[1]);
    return response;
  }
  if (input.data === null) return undefined;
  const text = input.text();
  try {
    return JSON.parse(text); // sent back as JSON
  } catch {
    return text;
  }
}

/**
 * Milliseconds from the input: a plain number, JSON `{"ms": N}` (or a JSON
 * number / numeric string), or for HTTP the `ms` query parameter or the body.
 *
 * @param {import('../node/lib/io').Input} input
 * @returns {number}
 */
function millis(input) {
  const query = input.http && input.http.query;
  if (query && query.ms !== undefined) return parseMs(query.ms);
  return parseMs(input.text());
}

/**
 * @param {string} text
 * @returns {number}
 */
function parseMs(text) {
  const trimmed = String(text).trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed);
  let value;
  try {
    value = JSON.parse(trimmed);
  } catch {
    value = undefined;
  }
  if (value && typeof value === 'object' && !Array.isArray(value)) value = value.ms;
  const n = typeof value === 'string' && /^\s*\d+\s*$/.test(value) ? Number(value) : value;
  if (typeof n === 'number' && Number.isFinite(n) && n >= 0) return Math.floor(n);
  throw new Error(`expected a number of milliseconds or {"ms": N}, got ${JSON.stringify(trimmed)}`);
}

/**
 * Sleeps for the requested time unless cancelled first: the timer rejects
 * with an `AbortError` when `context.signal` aborts, which the SDK answers
 * `Cancelled`. Logs `sleep cancelled after N ms (<reason>)`, the reason being
 * `context.cancelReason` or `no reason given`.
 *
 * @type {import('../node/lib/dispatcher').Handler}
 */
async function sleep(context, input) {
  const ms = millis(input);
  const started = Date.now();
  try {
    await sleepFor(ms, undefined, { signal: context.signal });
  } catch (err) {
    if (context.signal.aborted) {
      const reason = context.cancelReason ?? 'no reason given';
      context.info(`sleep cancelled after ${Date.now() - started} ms (${reason})`);
    }
    throw err;
  }
  return `slept ${ms} ms`;
}

/**
 * Busy-waits for the requested time, ignoring cancellation entirely. It
 * spins in 10 ms slices and yields between them, so the worker keeps
 * answering the host (other invocations, cancels, terminate) meanwhile.
 *
 * @type {import('../node/lib/dispatcher').Handler}
 */
async function spin(context, input) {
  const ms = millis(input);
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const slice = Math.min(deadline, Date.now() + 10);
    while (Date.now() < slice) {
      // busy
    }
    await new Promise((resolve) => setImmediate(resolve));
  }
  return `spun ${ms} ms`;
}

/**
 * Throws with the input text.
 *
 * @type {import('../node/lib/dispatcher').Handler}
 */
function panic(context, input) {
  throw new Error(`panic requested: ${input.text()}`);
}

/**
 * Logs, then exits the whole worker process with code 3.
 *
 * @type {import('../node/lib/dispatcher').Handler}
 */
async function crash(context) {
  context.error('crash requested: exiting with code 3');
  // Give the log line a moment to reach the host.
  await sleepFor(100);
  process.exit(3);
}

/**
 * Fails (rejects) with the input text.
 *
 * @type {import('../node/lib/dispatcher').Handler}
 */
async function fail(context, input) {
  throw new Error(`failure requested: ${input.text()}`);
}

/**
 * Emits one log line at each of info, warn and error.
 *
 * @type {import('../node/lib/dispatcher').Handler}
 */
function log(context) {
  context.info('info from log function');
  context.warn('warning from log function');
  context.error('error from log function');
  return 'logged';
}

if (require.main === module) {
  // The HTTP functions' triggers match their function.json, so a
  // worker-indexed run (SAMPLE_WORKER_INDEXING=1) serves the same functions
  // at the same URLs.
  const http = { methods: ['GET', 'POST'], authLevel: 'anonymous' };
  new Worker({ workerIndexing: process.env.SAMPLE_WORKER_INDEXING === '1' })
    .http('echo', { ...http, handler: echo })
    .http('sleep', { ...http, handler: sleep })
    .function('spin', spin)
    .function('panic', panic)
    .function('crash', crash)
    .function('fail', fail)
    .function('log', log)
    .main();
}

module.exports = { echo, sleep, spin, panic, crash, fail, log, parseMs };
