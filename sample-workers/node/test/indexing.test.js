'use strict';
/** Worker indexing: triggers declared on registration reach the host as the metadata response's `raw_bindings`. */

const test = require('node:test');
const assert = require('node:assert/strict');
const { harness } = require('./helpers');
const { Worker } = require('../lib');

const ITEM_TRIGGER =
  '{"type":"httpTrigger","direction":"in","name":"req","methods":["get"],"authLevel":"anonymous","route":"items/{id:int}"}';
const HTTP_RETURN = '{"type":"http","direction":"out","name":"$return"}';
const MANUAL_TRIGGER = '{"type":"manualTrigger","direction":"in","name":"input"}';

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
