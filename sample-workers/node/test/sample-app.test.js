'use strict';
/** Unit tests of the sample app's handlers, using InvocationContext.forTest. */

const test = require('node:test');
const assert = require('node:assert/strict');
const { InvocationContext, Input, HttpResponse, isAbortError } = require('../lib');
const app = require('../../node-app/index.js');

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
