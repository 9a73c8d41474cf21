'use strict';
/** Unit tests of the sample app's handlers, using InvocationContext.forTest. */

const fs = require('node:fs');
const path = require('node:path');
const test = require('node:test');
const assert = require('node:assert/strict');
const { InvocationContext, Input, HttpResponse, isAbortError } = require('../lib');
const { harness } = require('./helpers');
const app = require('../../node-app/index.js');

const APP_DIR = path.join(__dirname, '../../node-app');
const NEXT = '2024-05-01T12:01:00.000Z';

/** The TimerInfo the host sends a timer function, as a decoded `TypedData`. */
function timerInfo({ next = NEXT, pastDue = false } = {}) {
  const info = {
    Schedule: { AdjustForDST: true },
    ScheduleStatus: {
      Last: '2024-05-01T12:00:00.000Z',
      Next: next,
      LastUpdated: '2024-05-01T12:00:00.000Z',
    },
    IsPastDue: pastDue,
  };
  return { data: 'json', json: JSON.stringify(info) };
}

/** Runs `fn` with `SAMPLE_TICK_WORK_MS` set to `value` (unset for `undefined`), then restores it. */
async function withTickWork(value, fn) {
  const saved = process.env.SAMPLE_TICK_WORK_MS;
  if (value === undefined) delete process.env.SAMPLE_TICK_WORK_MS;
  else process.env.SAMPLE_TICK_WORK_MS = value;
  try {
    return await fn();
  } finally {
    if (saved === undefined) delete process.env.SAMPLE_TICK_WORK_MS;
    else process.env.SAMPLE_TICK_WORK_MS = saved;
  }
}

test('sleep input formats', () => {
  assert.equal(app.parseMs('250'), 250);
  assert.equal(app.parseMs('{"ms": 40}'), 40);
  assert.equal(app.parseMs('{"ms": "7"}'), 7);
  assert.equal(app.parseMs('12.9'), 12);
  assert.throws(() => app.parseMs('soon'), /expected a number of milliseconds/);
});

test('sleep observes the abort signal and logs it', async () => {
  const { context, controller, logs } = InvocationContext.forTest('i', 'sleep');
  const running = app.sleep(context, Input.of('60000'));
  controller.abort(new DOMException('cancelled', 'AbortError'));
  await assert.rejects(running, (err) => isAbortError(err));
  assert.equal(context.cancelReason, null);
  assert.match(logs[0].message, /^sleep cancelled after \d+ ms \(no reason given\)$/);
});

test('sleep logs the cancel reason', async () => {
  const { context, controller, logs } = InvocationContext.forTest('i', 'sleep');
  const running = app.sleep(context, Input.of('60000'));
  controller.abort('lease lost'); // what the SDK does for a cancel with a reason
  await assert.rejects(running, (err) => isAbortError(err));
  assert.equal(context.cancelReason, 'lease lost');
  assert.match(logs[0].message, /^sleep cancelled after \d+ ms \(lease lost\)$/);
});

test('spin ignores the abort signal', async () => {
  const { context, controller } = InvocationContext.forTest();
  controller.abort();
  assert.equal(await app.spin(context, Input.of('30')), 'spun 30 ms');
});

test('echo returns HTTP bodies with their content type, JSON as JSON, text as text', () => {
  const { context } = InvocationContext.forTest();
  const http = Input.of({
    data: 'http',
    http: { method: 'POST', headers: { 'Content-Type': 'text/plain' }, body: { data: 'bytes', bytes: Buffer.from('hi') } },
  });
  const response = app.echo(context, http);
  assert.ok(response instanceof HttpResponse);
  assert.equal(response.status, 200);
  assert.equal(response.body.toString(), 'hi');
  assert.equal(response.headers['content-type'], 'text/plain');
  assert.deepEqual(app.echo(context, Input.of('{"a":1}')), { a: 1 });
  assert.equal(app.echo(context, Input.of('plain')), 'plain');
});

test("the sample worker's indexed bindings match its function.json files", () => {
  const worker = app.createWorker({ workerIndexing: true });
  const h = harness(Object.fromEntries(worker.functions), { triggers: worker.triggers, workerIndexing: true });
  h.deliver({ functions_metadata_request: { function_app_directory: APP_DIR } });
  const results = h.sent[0].function_metadata_response.function_metadata_results;
  const indexed = Object.fromEntries(results.map((m) => [m.name, m.raw_bindings.map((b) => JSON.parse(b))]));
  const folders = fs
    .readdirSync(APP_DIR)
    .filter((f) => fs.existsSync(path.join(APP_DIR, f, 'function.json')))
    .sort();
  assert.deepEqual(Object.keys(indexed).sort(), folders);
  for (const name of folders) {
    const { bindings } = JSON.parse(fs.readFileSync(path.join(APP_DIR, name, 'function.json'), 'utf8'));
    assert.deepEqual(indexed[name], bindings, name);
  }
  assert.deepEqual(indexed.tick, [
    { type: 'timerTrigger', direction: 'in', name: 'timer', schedule: '0 * * * * *', runOnStartup: false },
  ]);
});

test('tick logs the scheduled time and whether it is past due, and returns it', async () => {
  await withTickWork(undefined, async () => {
    const { context, logs } = InvocationContext.forTest('i', 'tick');
    assert.equal(await app.tick(context, Input.of(timerInfo())), `ticked ${NEXT}`);
    assert.deepEqual(logs.map((l) => l.message), [`tick ${NEXT} (past due: false)`]);
    const late = InvocationContext.forTest('j', 'tick');
    assert.equal(await app.tick(late.context, Input.of(timerInfo({ pastDue: true }))), `ticked ${NEXT}`);
    assert.deepEqual(late.logs.map((l) => l.message), [`tick ${NEXT} (past due: true)`]);
  });
});

test('tick works for SAMPLE_TICK_WORK_MS', async () => {
  await withTickWork('30', async () => {
    const { context, logs } = InvocationContext.forTest('i', 'tick');
    const started = Date.now();
    assert.equal(await app.tick(context, Input.of(timerInfo())), `ticked ${NEXT}`);
    assert.ok(Date.now() - started >= 25, 'it worked for SAMPLE_TICK_WORK_MS');
    assert.deepEqual(logs.map((l) => l.message), [`tick ${NEXT} (past due: false)`]);
  });
});

test('tick cancelled while working logs the cancel reason', async () => {
  await withTickWork('60000', async () => {
    const { context, controller, logs } = InvocationContext.forTest('i', 'tick');
    const running = app.tick(context, Input.of(timerInfo()));
    controller.abort('lease lost'); // what the SDK does for a cancel with a reason
    await assert.rejects(running, (err) => isAbortError(err));
    assert.deepEqual(
      logs.map((l) => l.message),
      [`tick ${NEXT} (past due: false)`, `tick ${NEXT} cancelled (lease lost)`],
    );

    const bare = InvocationContext.forTest('j', 'tick');
    const unexplained = app.tick(bare.context, Input.of(timerInfo()));
    bare.controller.abort(new DOMException('cancelled', 'AbortError'));
    await assert.rejects(unexplained, (err) => isAbortError(err));
    assert.equal(bare.logs[1].message, `tick ${NEXT} cancelled (no reason given)`);
  });
});

test('tick through the dispatcher: a cancel with reason lease lost is logged and answered Cancelled', async () => {
  await withTickWork('60000', async () => {
    const h = harness({ tick: app.tick });
    h.loadAll();
    h.deliver({
      invocation_request: {
        invocation_id: 't1',
        function_id: 'id-tick',
        input_data: [{ name: 'timer', data: { json: timerInfo().json } }],
      },
    });
    await new Promise((resolve) => setTimeout(resolve, 20)); // let it start working
    h.cancel('t1', 1000, 'lease lost');
    const response = await h.response('t1');
    assert.equal(response.result.status, 'Cancelled');
    const lines = h.sent
      .filter((m) => m.content === 'rpc_log')
      .map((m) => [m.rpc_log.invocation_id, m.rpc_log.message]);
    assert.deepEqual(lines, [
      ['t1', `tick ${NEXT} (past due: false)`],
      ['t1', `tick ${NEXT} cancelled (lease lost)`],
    ]);
  });
});

test('trace returns the trace context it was given, or nulls', () => {
  const traceContext = {
    traceParent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
    traceState: 'congo=t61rcWkgMzE',
    attributes: { OperationName: 'trace' },
  };
  const { context } = InvocationContext.forTest('i', 'trace', { traceContext });
  assert.deepEqual(app.trace(context, Input.of('')), traceContext);
  assert.deepEqual(app.trace(InvocationContext.forTest().context, Input.of('')), {
    traceParent: null,
    traceState: null,
    attributes: null,
  });
});
