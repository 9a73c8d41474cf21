'use strict';
/** Worker indexing: triggers declared on registration reach the host as the metadata response's `raw_bindings`. */

const test = require('node:test');
const assert = require('node:assert/strict');
const { harness } = require('./helpers');
const { Worker, Input } = require('../lib');

const ITEM_TRIGGER =
  '{"type":"httpTrigger","direction":"in","name":"req","methods":["get"],"authLevel":"anonymous","route":"items/{id:int}"}';
const HTTP_RETURN = '{"type":"http","direction":"out","name":"$return"}';
const MANUAL_TRIGGER = '{"type":"manualTrigger","direction":"in","name":"input"}';
const TICK_TRIGGER =
  '{"type":"timerTrigger","direction":"in","name":"timer","schedule":"0 * * * * *","runOnStartup":false}';

function sampleWorker(options = { workerIndexing: true }) {
  return new Worker(options)
    .http('item', { route: 'items/{id:int}', methods: ['GET'], authLevel: 'anonymous', handler: () => 'item' })
    .http('hello', () => 'hello')
    .function('job', () => undefined)
    .function('initializer', () => undefined);
}

/** A harness over the worker's registrations; returns the decoded metadata response. */
function metadataOf(worker) {
  const h = harness(Object.fromEntries(worker.functions), {
    triggers: worker.triggers,
    workerIndexing: worker.workerIndexing,
  });
  h.deliver({ functions_metadata_request: { function_app_directory: '/app' } });
  return { h, response: h.sent[0].function_metadata_response };
}

test('an HTTP route and a manual function are listed with Azure raw bindings', () => {
  const { response } = metadataOf(sampleWorker());
  assert.equal(response.result.status, 'Success');
  assert.equal(response.use_default_metadata_indexing, false);
  const byName = Object.fromEntries(response.function_metadata_results.map((m) => [m.name, m]));
  assert.deepEqual(Object.keys(byName), ['hello', 'item', 'job']); // lifecycle hooks are not listed
  assert.deepEqual(byName.item.raw_bindings, [ITEM_TRIGGER, HTTP_RETURN]);
  assert.deepEqual(byName.job.raw_bindings, [MANUAL_TRIGGER]);
});

test('an HTTP function without options has authLevel function, every method and no route', () => {
  const { response } = metadataOf(sampleWorker());
  const hello = response.function_metadata_results.find((m) => m.name === 'hello');
  assert.deepEqual(hello.raw_bindings, [
    '{"type":"httpTrigger","direction":"in","name":"req","authLevel":"function"}',
    HTTP_RETURN,
  ]);
});

test('metadata fills bindings, ids, language, status and worker_indexed', () => {
  const { response } = metadataOf(sampleWorker());
  const byName = Object.fromEntries(response.function_metadata_results.map((m) => [m.name, m]));
  const item = byName.item;
  assert.equal(item.function_id, 'item');
  assert.equal(item.language, 'node');
  assert.equal(item.is_proxy, false);
  assert.deepEqual(item.properties, { worker_indexed: 'True' });
  assert.equal(item.status.status, 'Success');
  assert.equal(item.bindings.req.type, 'httpTrigger');
  assert.equal(item.bindings.req.direction, 'in');
  assert.equal(item.bindings.$return.type, 'http');
  assert.equal(item.bindings.$return.direction, 'out');
  assert.equal(byName.job.bindings.input.type, 'manualTrigger');
});

test('WorkerIndexing is advertised only when on; off, the host indexes function.json', () => {
  const on = metadataOf(sampleWorker()).h;
  on.deliver({ worker_init_request: { host_version: '1.0' } });
  assert.equal(on.sent[1].worker_init_response.capabilities.WorkerIndexing, 'true');
  const { h: off, response } = metadataOf(sampleWorker({}));
  assert.equal(response.use_default_metadata_indexing, true);
  assert.deepEqual(response.function_metadata_results, []);
  off.deliver({ worker_init_request: { host_version: '1.0' } });
  assert.equal(off.sent[1].worker_init_response.capabilities.WorkerIndexing, undefined);
});

test('HTTP options are checked at registration', () => {
  assert.throws(() => new Worker().http('a', { handler: () => 1, authLevel: 'system' }), /authLevel of 'a'/);
  assert.throws(() => new Worker().http('a', { handler: () => 1, methods: 'GET' }), /methods of 'a'/);
  assert.throws(() => new Worker().http('a', { handler: () => 1, authlevel: 'admin' }), /unknown .* authlevel/);
  assert.throws(() => new Worker().http('a', { route: 'x' }), /handler for 'a' must be a function/);
  const trigger = new Worker().http('a', { handler: () => 1, methods: ['Get'], authLevel: 'ADMIN' }).triggers.get('a');
  assert.deepEqual([...trigger.methods], ['get']);
  assert.equal(trigger.authLevel, 'admin');
});

test('a timer is listed with its schedule and runOnStartup', () => {
  const worker = new Worker({ workerIndexing: true })
    .timer('tick', { schedule: '0 * * * * *', runOnStartup: false, handler: () => 'ticked' })
    .timer('startup', { schedule: '00:05:00', runOnStartup: true, handler: () => undefined })
    .timer('hourly', { schedule: '0 0 * * * *', handler: () => undefined });
  const { response } = metadataOf(worker);
  const byName = Object.fromEntries(response.function_metadata_results.map((m) => [m.name, m]));
  assert.deepEqual(Object.keys(byName).sort(), ['hourly', 'startup', 'tick']);
  assert.deepEqual(byName.tick.raw_bindings, [TICK_TRIGGER]);
  assert.deepEqual(byName.startup.raw_bindings, [
    '{"type":"timerTrigger","direction":"in","name":"timer","schedule":"00:05:00","runOnStartup":true}',
  ]);
  assert.deepEqual(byName.hourly.raw_bindings, [
    '{"type":"timerTrigger","direction":"in","name":"timer","schedule":"0 0 * * * *","runOnStartup":false}',
  ]);
  assert.equal(byName.tick.bindings.timer.type, 'timerTrigger');
  assert.equal(byName.tick.bindings.timer.direction, 'in');
  assert.deepEqual(byName.tick.properties, { worker_indexed: 'True' });
});

test('timer options are checked at registration', () => {
  assert.throws(() => new Worker().timer('t', { handler: () => 1 }), /schedule of 't'/);
  assert.throws(() => new Worker().timer('t', { handler: () => 1, schedule: ' ' }), /schedule of 't'/);
  assert.throws(
    () => new Worker().timer('t', { handler: () => 1, schedule: '0 * * * * *', runOnStartup: 'yes' }),
    /runOnStartup of 't'/,
  );
  assert.throws(
    () => new Worker().timer('t', { handler: () => 1, schedule: '0 * * * * *', runonstartup: true }),
    /unknown .* runonstartup/,
  );
  assert.throws(() => new Worker().timer('t', { schedule: '0 * * * * *' }), /handler for 't' must be a function/);
  assert.throws(() => new Worker().timer('t'), /schedule of 't'/);
  const trigger = new Worker().timer('t', { handler: () => 1, schedule: '00:00:10' }).triggers.get('t');
  assert.deepEqual({ ...trigger }, { type: 'timer', schedule: '00:00:10', runOnStartup: false });
});

test('input.timer() parses the TimerInfo', () => {
  const info = {
    Schedule: { AdjustForDST: true },
    ScheduleStatus: {
      Last: '2024-05-01T12:00:00Z',
      Next: '2024-05-01T12:01:00Z',
      LastUpdated: '2024-05-01T12:00:00.5Z',
    },
    IsPastDue: true,
  };
  assert.deepEqual(Input.of({ data: 'json', json: JSON.stringify(info) }).timer(), {
    isPastDue: true,
    schedule: { adjustForDST: true },
    scheduleStatus: {
      last: '2024-05-01T12:00:00Z',
      next: '2024-05-01T12:01:00Z',
      lastUpdated: '2024-05-01T12:00:00.5Z',
    },
  });
  assert.deepEqual(Input.of('{"ScheduleStatus":null}').timer(), {
    isPastDue: false,
    schedule: { adjustForDST: null },
    scheduleStatus: { last: null, next: null, lastUpdated: null },
  });
  assert.throws(() => Input.of('[1]').timer(), /not a TimerInfo/);
  assert.throws(() => Input.of('not json').timer(), /not the expected JSON/);
});
