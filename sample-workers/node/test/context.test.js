'use strict';
/** The invocation's deadline and attempt, from fnhost's FnhostDeadline and FnhostAttempt trigger metadata. */

const test = require('node:test');
const assert = require('node:assert/strict');
const { harness } = require('./helpers');
const { InvocationContext, Input } = require('../lib');
const { fromTriggerMetadata, META_ATTEMPT, META_DEADLINE } = require('../lib/context');
const app = require('../../node-app/index.js');

const DEADLINE_MS = 1764795600123; // 2025-12-03T21:00:00.123Z

/** Invokes `fn` with `metadata` as trigger metadata and returns the context it saw. */
async function contextWith(metadata) {
  let seen = null;
  const h = harness({
    fn: (context) => {
      seen = context;
    },
  });
  h.loadAll();
  h.deliver({
    invocation_request: {
      invocation_id: 'i1',
      function_id: 'id-fn',
      input_data: [{ name: 'input', data: { string: '' } }],
      trigger_metadata: metadata,
    },
  });
  assert.equal((await h.response('i1')).result.status, 'Success');
  return seen;
}

test('the keys are the ones the host sends', () => {
  assert.equal(META_DEADLINE, 'FnhostDeadline');
  assert.equal(META_ATTEMPT, 'FnhostAttempt');
});

test('FnhostDeadline and FnhostAttempt (JSON numbers, as the host sends them) are context.deadline and context.attempt', async () => {
  const context = await contextWith({
    FnhostDeadline: { json: String(DEADLINE_MS) },
    FnhostAttempt: { json: '3' },
  });
  assert.ok(context.deadline instanceof Date);
  assert.equal(context.deadline.getTime(), DEADLINE_MS);
  assert.equal(context.deadline.toISOString(), '2025-12-03T21:00:00.123Z');
  assert.equal(context.attempt, 3);
});

test('without them the deadline is undefined and the attempt 1', async () => {
  const context = await contextWith({});
  assert.equal(context.deadline, undefined);
  assert.equal(context.attempt, 1);
});

test('malformed values are ignored: no deadline, attempt 1', () => {
  for (const [deadline, attempt] of [
    [{ data: 'json', json: 'soon' }, { data: 'json', json: '0' }],
    [{ data: 'json', json: '"1764795600123"' }, { data: 'json', json: '1.5' }],
    [{ data: 'string', string: '1764795600123' }, { data: 'json', json: '-2' }],
    [{ data: 'json', json: 'null' }, { data: 'json', json: 'not json' }],
  ]) {
    const decoded = fromTriggerMetadata({ FnhostDeadline: deadline, FnhostAttempt: attempt });
    assert.deepEqual(decoded, { deadlineMs: undefined, attempt: 1 }, JSON.stringify([deadline, attempt]));
  }
  assert.deepEqual(fromTriggerMetadata(undefined), { deadlineMs: undefined, attempt: 1 });
});

test('int and double TypedData are read too', () => {
  const metadata = {
    FnhostDeadline: { data: 'int', int: String(DEADLINE_MS) },
    FnhostAttempt: { data: 'double', double: 2 },
  };
  assert.deepEqual(fromTriggerMetadata(metadata), { deadlineMs: DEADLINE_MS, attempt: 2 });
});

test('the deadline is a fresh Date each time: changing one does not move it', () => {
  const { context } = InvocationContext.forTest('i', 'f', { deadline: new Date(DEADLINE_MS) });
  context.deadline.setTime(0);
  assert.equal(context.deadline.getTime(), DEADLINE_MS);
});

test('forTest defaults to no deadline and attempt 1, and takes both', () => {
  const plain = InvocationContext.forTest().context;
  assert.equal(plain.deadline, undefined);
  assert.equal(plain.attempt, 1);
  const retried = InvocationContext.forTest('i', 'deadline', { deadline: new Date(DEADLINE_MS), attempt: 2 }).context;
  assert.deepEqual(app.attemptAndDeadline(retried, Input.of('')), { attempt: 2, deadline: DEADLINE_MS });
  assert.deepEqual(app.attemptAndDeadline(plain, Input.of('')), { attempt: 1, deadline: null });
});
