'use strict';
/**
 * fnhost Node sample worker: small functions that exercise the host —
 * success, long runs that honour or ignore cancellation, exceptions,
 * crashes, failures and logging. Mirrors the Rust sample worker
 * (`sample-workers/rust-worker`).
 *
 * - `echo`  returns its input (HTTP: 200 with the same body and content type).
 * - `sleep` waits for the requested milliseconds unless cancelled, then logs
 *   `sleep cancelled after N ms (<reason>)`.
 * - `spin`  busy-waits, ignoring cancellation entirely.
 * - `panic` throws.
 * - `crash` logs, then exits the whole worker process with code 3.
 * - `fail`  rejects with the input text.
 * - `log`   logs one line at each of info, warn and error.
 * - `console` logs through `console`: `console.log` and `console.debug`, then
 *   after an await `console.warn` and `console.error`; the SDK makes each
 *   line this invocation's log, at Information, Debug, Warning and Error.
 * - `deadline` returns `{"attempt", "deadline"}`: the attempt and the
 *   timeout's deadline (Unix ms, `null` when none) the host sent.
 * - `tick`  a timer (every minute): logs `tick <Next> (past due: <bool>)`
 *   from its `TimerInfo`; with `SAMPLE_TICK_WORK_MS` > 0 it then works that
 *   long, and when cancelled logs `tick <Next> cancelled (<reason>)`.
 *   Returns `ticked <Next>`.
 * - `trace` returns the trace context it was given as JSON:
 *   `{"traceParent", "traceState", "attributes"}` (all `null` when none).
 *
 * `echo`, `sleep` and `trace` are HTTP functions (GET and POST, anonymous), `tick` a
 * timer, the others manual: the same as their `function.json` files, which
 * the host reads unless `SAMPLE_WORKER_INDEXING=1` makes the worker report
 * its functions itself.
 *
 * Launched by the host through `worker.config.json`. It uses the SDK as a
 * package, `fnhost-worker` (its `package.json` links `../node`): run
 * `sample-workers/node/setup.sh` once to install it and its dependencies.
 */

const { setTimeout: sleepFor } = require('node:timers/promises');
const { Worker, HttpResponse } = require('fnhost-worker');

/**
 * Returns the input: HTTP requests get a 200 with the same body and content
 * type; JSON text comes back as JSON, other text as text.
 *
 * @type {import('fnhost-worker').Handler}
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
 * Describes the trace context it was given (`context.traceContext`, shaped
 * like `@azure/functions` v4's): `{traceParent, traceState, attributes}`, all
 * `null` when the host sent none.
 *
 * @type {import('fnhost-worker').Handler}
 */
function trace(context) {
  const t = context.traceContext;
  if (!t) return { traceParent: null, traceState: null, attributes: null };
  return { traceParent: t.traceParent, traceState: t.traceState, attributes: t.attributes };
}

/**
 * Milliseconds from the input: a plain number, JSON `{"ms": N}` (or a JSON
 * number / numeric string), or for HTTP the `ms` query parameter or the body.
 *
 * @param {import('fnhost-worker').Input} input
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
 * @type {import('fnhost-worker').Handler}
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
 * @type {import('fnhost-worker').Handler}
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
 * @type {import('fnhost-worker').Handler}
 */
function panic(context, input) {
  throw new Error(`panic requested: ${input.text()}`);
}

/**
 * Logs, then exits the whole worker process with code 3.
 *
 * @type {import('fnhost-worker').Handler}
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
 * @type {import('fnhost-worker').Handler}
 */
async function fail(context, input) {
  throw new Error(`failure requested: ${input.text()}`);
}

/**
 * Emits one log line at each of info, warn and error.
 *
 * @type {import('fnhost-worker').Handler}
 */
function log(context) {
  context.info('info from log function');
  context.warn('warning from log function');
  context.error('error from log function');
  return 'logged';
}

/**
 * Logs through `console`, before and after an await: the SDK's console
 * bridge sends each line as this invocation's log, at its level.
 *
 * @type {import('fnhost-worker').Handler}
 */
async function consoleLog() {
  console.log('console.log from console function');
  console.debug('console.debug from console function');
  await sleepFor(1);
  console.warn('console.warn from console function');
  console.error('console.error from console function');
  return 'logged';
}

/**
 * The attempt and the deadline the host sent: `{attempt, deadline}`, the
 * deadline in Unix ms (`null` when the host sent none).
 *
 * @type {import('fnhost-worker').Handler}
 */
function attemptAndDeadline(context) {
  return { attempt: context.attempt, deadline: context.deadline ? context.deadline.getTime() : null };
}

/**
 * A non-negative integer from the environment; 0 when unset or not one.
 *
 * @param {string} name
 * @returns {number}
 */
function envMs(name) {
  const value = process.env[name] ?? '';
  return /^\d+$/.test(value) ? Number(value) : 0;
}

/**
 * A timer function: logs the tick it was given (Azure's `TimerInfo`). With
 * `SAMPLE_TICK_WORK_MS` set, it then works that long, stopping early when
 * cancelled and saying why (another host took the schedule over: `lease
 * lost`).
 *
 * @type {import('fnhost-worker').Handler}
 */
async function tick(context, input) {
  const timer = input.timer();
  const scheduled = timer.scheduleStatus.next ?? '?';
  context.info(`tick ${scheduled} (past due: ${timer.isPastDue})`);
  const ms = envMs('SAMPLE_TICK_WORK_MS');
  if (ms > 0) {
    try {
      await sleepFor(ms, undefined, { signal: context.signal });
    } catch (err) {
      if (context.signal.aborted) {
        const reason = context.cancelReason ?? 'no reason given';
        context.info(`tick ${scheduled} cancelled (${reason})`);
      }
      throw err;
    }
  }
  return `ticked ${scheduled}`;
}

/**
 * The sample worker with every function registered. The HTTP and timer
 * functions' triggers match their function.json, so a worker-indexed run
 * (SAMPLE_WORKER_INDEXING=1) serves the same functions at the same URLs and
 * on the same schedule.
 *
 * @param {{workerIndexing?: boolean}} [options]
 * @returns {Worker}
 */
function createWorker({ workerIndexing = process.env.SAMPLE_WORKER_INDEXING === '1' } = {}) {
  /** @type {Pick<import('fnhost-worker').HttpOptions, 'methods' | 'authLevel'>} */
  const http = { methods: ['GET', 'POST'], authLevel: 'anonymous' };
  return new Worker({ workerIndexing })
    .http('echo', { ...http, handler: echo })
    .http('sleep', { ...http, handler: sleep })
    .http('trace', { ...http, handler: trace })
    .function('spin', spin)
    .function('panic', panic)
    .function('crash', crash)
    .function('fail', fail)
    .function('log', log)
    .function('console', consoleLog)
    .function('deadline', attemptAndDeadline)
    .timer('tick', { schedule: '0 * * * * *', runOnStartup: false, handler: tick });
}

if (require.main === module) {
  createWorker().main();
}

module.exports = {
  createWorker,
  echo,
  sleep,
  spin,
  panic,
  crash,
  fail,
  log,
  consoleLog,
  attemptAndDeadline,
  tick,
  trace,
  parseMs,
};
