'use strict';
/** Unit tests of the dispatcher: handshake, loading, invocation outcomes and cancellation. */

const test = require('node:test');
const assert = require('node:assert/strict');
const { setTimeout: sleep } = require('node:timers/promises');
const { harness } = require('./helpers');
const { BoundedSet, InvocationContext, isAbortError } = require('../lib');

test('init advertises the cancel capability and answers status and metadata requests', () => {
  const h = harness({ echo: () => 'x' });
  h.deliver({ worker_init_request: { host_version: '1.0', function_app_directory: '/app' } });
  h.deliver({ worker_status_request: {} });
  h.deliver({ functions_metadata_request: { function_app_directory: '/app' } });
  const [init, status, metadata] = h.sent;
  assert.equal(init.content, 'worker_init_response');
  assert.equal(init.worker_init_response.capabilities.HandlesInvocationCancelMessage, 'true');
  assert.equal(init.worker_init_response.result.status, 'Success');
  assert.equal(init.worker_init_response.worker_metadata.runtime_name, 'node');
  assert.equal(status.content, 'worker_status_response');
  assert.equal(metadata.function_metadata_response.use_default_metadata_indexing, true);
  assert.equal(metadata.function_metadata_response.result.status, 'Success');
});

test('functions load by metadata name; an unknown name fails naming it', () => {
  const h = harness({ echo: () => 'x', sleep: () => 'y' });
  h.deliver({ function_load_request: { function_id: 'f1', metadata: { name: 'echo' } } });
  h.deliver({ function_load_request: { function_id: 'f2', metadata: { name: 'nope' } } });
  h.deliver({
    function_load_request_collection: {
      function_load_requests: [{ function_id: 'f3', metadata: { name: 'sleep' } }],
    },
  });
  const [ok, bad, collection] = h.sent;
  assert.deepEqual([ok.function_load_response.function_id, ok.function_load_response.result.status], ['f1', 'Success']);
  assert.equal(bad.function_load_response.result.status, 'Failure');
  const message = bad.function_load_response.result.exception.message;
  assert.match(message, /'nope'/);
  assert.match(message, /registered: echo, sleep/);
  assert.equal(collection.function_load_response_collection.function_load_responses[0].result.status, 'Success');
});

test('a result is returned as typed data and an unloaded function id fails', async () => {
  const h = harness({ echo: (ctx, input) => input.text(), obj: () => ({ a: 1 }) });
  h.loadAll();
  h.invoke('i1', 'echo', 'hello');
  h.invoke('i2', 'obj');
  h.deliver({ invocation_request: { invocation_id: 'i3', function_id: 'missing' } });
  const r1 = await h.response('i1');
  assert.equal(r1.result.status, 'Success');
  assert.equal(r1.return_value.string, 'hello');
  assert.equal((await h.response('i2')).return_value.json, '{"a":1}');
  const r3 = await h.response('i3');
  assert.equal(r3.result.status, 'Failure');
  assert.match(r3.result.exception.message, /function id missing was not loaded/);
});

test('a cancel aborts context.signal and an AbortError rejection is answered Cancelled', async () => {
  let seenReason = null;
  const h = harness({
    sleep: async (ctx) => {
      try {
        await sleep(60000, undefined, { signal: ctx.signal, ref: false });
      } finally {
        seenReason = ctx.signal.reason;
      }
    },
  });
  h.loadAll();
  h.invoke('c1', 'sleep');
  await sleep(10);
  assert.equal(h.dispatcher.inFlight, 1);
  const started = Date.now();
  h.cancel('c1');
  const r = await h.response('c1');
  assert.equal(r.result.status, 'Cancelled');
  assert.ok(Date.now() - started < 1000, 'the handler stopped promptly');
  assert.ok(isAbortError(seenReason), `signal.reason is an AbortError: ${seenReason}`);
  assert.equal(h.dispatcher.inFlight, 0);
});

test('a cancel with a reason aborts context.signal with it and sets context.cancelReason', async () => {
  const seen = {};
  const h = harness({
    sleep: async (ctx) => {
      seen.before = ctx.cancelReason;
      ctx.signal.addEventListener('abort', () => {
        seen.inListener = ctx.cancelReason;
      });
      try {
        await sleep(60000, undefined, { signal: ctx.signal, ref: false });
      } catch (err) {
        seen.err = err;
        seen.signalReason = ctx.signal.reason;
        seen.cancelReason = ctx.cancelReason;
        throw err;
      }
    },
  });
  h.loadAll();
  h.invoke('r1', 'sleep');
  await sleep(10);
  h.cancel('r1', 1000, 'lease lost');
  const r = await h.response('r1');
  assert.equal(r.result.status, 'Cancelled');
  assert.equal(seen.before, null, 'no reason before the cancel');
  assert.equal(seen.inListener, 'lease lost', 'set before the signal aborts');
  assert.equal(seen.signalReason, 'lease lost');
  assert.equal(seen.cancelReason, 'lease lost');
  assert.ok(isAbortError(seen.err), 'the timer still rejects with an AbortError');
  assert.equal(seen.err.cause, 'lease lost');
});

test('the first cancel reason stands: a second cancel with another reason changes nothing', async () => {
  let release;
  const gate = new Promise((resolve) => {
    release = resolve;
  });
  const seen = [];
  const h = harness({
    wait: async (ctx) => {
      await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve));
      seen.push([ctx.signal.reason, ctx.cancelReason]);
      await gate; // the later cancels arrive meanwhile
      seen.push([ctx.signal.reason, ctx.cancelReason]);
      ctx.signal.throwIfAborted();
    },
  });
  h.loadAll();
  h.invoke('f1', 'wait');
  h.cancel('f1', 1000, 'lease lost');
  await sleep(10);
  h.cancel('f1', 1000, 'timeout');
  h.cancel('f1'); // no reason: does not clear it either
  release();
  const r = await h.response('f1');
  assert.equal(r.result.status, 'Cancelled', 'throwIfAborted() throws the reason string: still Cancelled');
  assert.deepEqual(seen, [
    ['lease lost', 'lease lost'],
    ['lease lost', 'lease lost'],
  ]);
});

test('a cancel without a reason leaves cancelReason null and still aborts the signal', async () => {
  const seen = [];
  const handler = async (ctx) => {
    try {
      await sleep(60000, undefined, { signal: ctx.signal, ref: false });
    } finally {
      seen.push([ctx.signal.aborted, isAbortError(ctx.signal.reason), ctx.cancelReason]);
    }
  };
  const h = harness({ sleep: handler });
  h.loadAll();
  h.invoke('n1', 'sleep');
  await sleep(10);
  h.cancel('n1');
  assert.equal((await h.response('n1')).result.status, 'Cancelled');
  // A worker shutdown gives no reason either.
  h.invoke('n2', 'sleep');
  await sleep(10);
  h.dispatcher.cancelAll();
  assert.equal((await h.response('n2')).result.status, 'Cancelled');
  assert.deepEqual(seen, [
    [true, true, null],
    [true, true, null],
  ]);
});

test('any rejection after a cancel is answered Cancelled; an AbortError without one too', async () => {
  const h = harness({
    other: async (ctx) => {
      await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve));
      throw new Error('cleanup failed');
    },
    selfAbort: async () => {
      throw new DOMException('gave up', 'AbortError');
    },
  });
  h.loadAll();
  h.invoke('a', 'other');
  h.invoke('b', 'selfAbort');
  h.cancel('a');
  assert.equal((await h.response('a')).result.status, 'Cancelled');
  assert.equal((await h.response('b')).result.status, 'Cancelled');
});

test('a handler that ignores the cancel still answers with its own result', async () => {
  const h = harness({ stubborn: async () => { await sleep(50); return 'done anyway'; } });
  h.loadAll();
  h.invoke('s', 'stubborn');
  h.cancel('s');
  const r = await h.response('s');
  assert.equal(r.result.status, 'Success');
  assert.equal(r.return_value.string, 'done anyway');
});

test('a cancel that arrives before its request is remembered and answers it Cancelled', async () => {
  let called = false;
  const h = harness({ sleep: () => { called = true; } });
  h.loadAll();
  h.cancel('early');
  assert.equal(h.dispatcher.earlyCancelCount, 1);
  h.invoke('early', 'sleep');
  const r = await h.response('early');
  assert.equal(r.result.status, 'Cancelled');
  assert.equal(called, false, 'the handler never ran');
  assert.equal(h.dispatcher.earlyCancelCount, 0, 'the early cancel is consumed');
  // Other invocations are unaffected.
  h.invoke('later', 'sleep');
  assert.equal((await h.response('later')).result.status, 'Success');
});

test('early cancels are bounded: the oldest are forgotten', () => {
  const h = harness({ f: () => 1 }, { rememberedIds: 3 });
  for (const id of ['a', 'b', 'c', 'd']) h.cancel(id);
  assert.equal(h.dispatcher.earlyCancelCount, 3);
  const set = new BoundedSet(2);
  set.add('x');
  set.add('y');
  set.add('x');
  set.add('z');
  assert.deepEqual([set.has('x'), set.has('y'), set.has('z')], [false, true, true]);
  assert.equal(set.take('y'), true);
  assert.equal(set.take('y'), false);
});

test('an exception fails the invocation with its message and stack', async () => {
  const h = harness({
    panic: (ctx, input) => {
      throw new Error(`panic requested: ${input.text()}`);
    },
    rejectString: async () => Promise.reject('plain string'),
  });
  h.loadAll();
  h.invoke('p', 'panic', 'boom');
  h.invoke('q', 'rejectString');
  const r = await h.response('p');
  assert.equal(r.result.status, 'Failure');
  const ex = r.result.exception;
  assert.equal(ex.message, 'panic requested: boom');
  assert.match(ex.stack_trace, /^Error: panic requested: boom\n\s+at /);
  assert.equal(ex.is_user_exception, true);
  assert.equal(ex.source, 'panic');
  const q = await h.response('q');
  assert.equal(q.result.status, 'Failure');
  assert.equal(q.result.exception.message, 'plain string');
  assert.equal(h.dispatcher.inFlight, 0);
});

test('state is removed when the result is sent; a late cancel is ignored, not remembered', async () => {
  const h = harness({ quick: () => 'ok' });
  h.loadAll();
  h.invoke('done', 'quick');
  assert.equal(h.dispatcher.inFlight, 1);
  await h.response('done');
  assert.equal(h.dispatcher.inFlight, 0);
  assert.equal(h.dispatcher._inFlight.has('done'), false);
  h.cancel('done');
  h.cancel('done');
  assert.equal(h.dispatcher.earlyCancelCount, 0);
  await h.dispatcher.idle();
});

test('invocations run concurrently', async () => {
  const h = harness({ sleep: async (ctx, input) => { await sleep(Number(input.text())); return 'ok'; } });
  h.loadAll();
  const started = Date.now();
  for (let i = 0; i < 20; i++) h.invoke(`n${i}`, 'sleep', '100');
  assert.equal(h.dispatcher.inFlight, 20);
  for (let i = 0; i < 20; i++) assert.equal((await h.response(`n${i}`)).result.status, 'Success');
  assert.ok(Date.now() - started < 1000, `took ${Date.now() - started} ms`);
});

test('logs are RpcLog messages tied to their invocation', async () => {
  const h = harness({
    log: (ctx) => {
      ctx.info('one');
      ctx.warn('two');
      ctx.error('three');
      return 'logged';
    },
  });
  h.loadAll();
  h.invoke('l', 'log');
  await h.response('l');
  const logs = h.sent.filter((m) => m.content === 'rpc_log').map((m) => m.rpc_log);
  assert.deepEqual(logs.map((l) => [l.invocation_id, l.category, l.level, l.message, l.log_category]), [
    ['l', 'log', 'Information', 'one', 'User'],
    ['l', 'log', 'Warning', 'two', 'User'],
    ['l', 'log', 'Error', 'three', 'User'],
  ]);
  const last = h.sent[h.sent.length - 1];
  assert.equal(last.content, 'invocation_response', 'logs precede the response');
});

test('terminate reports its grace; cancelAll aborts in-flight work and cancels later requests', async () => {
  const h = harness({ sleep: (ctx) => sleep(60000, undefined, { signal: ctx.signal, ref: false }) });
  h.loadAll();
  assert.deepEqual(h.deliver({ worker_terminate: { grace_period: { seconds: 2, nanos: 500000000 } } }), {
    terminateGraceMs: 2500,
  });
  assert.deepEqual(h.deliver({ worker_terminate: {} }), { terminateGraceMs: 5000 });
  h.invoke('t1', 'sleep');
  h.dispatcher.cancelAll();
  await h.dispatcher.idle();
  assert.equal((await h.response('t1')).result.status, 'Cancelled');
  h.invoke('t2', 'sleep');
  assert.equal((await h.response('t2')).result.status, 'Cancelled');
});

test("handlers see the request's trace context as context.traceContext, undefined without one", async () => {
  const seen = [];
  const h = harness({
    trace: (ctx) => {
      seen.push(ctx.traceContext);
      return 'ok';
    },
  });
  h.loadAll();
  const traceParent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
  h.deliver({
    invocation_request: {
      invocation_id: 't1',
      function_id: 'id-trace',
      input_data: [{ name: 'input', data: { string: '' } }],
      trace_context: { trace_parent: traceParent, trace_state: 'congo=t61rcWkgMzE', attributes: { OperationName: 'trace' } },
    },
  });
  assert.equal((await h.response('t1')).result.status, 'Success');
  h.invoke('t2', 'trace');
  assert.equal((await h.response('t2')).result.status, 'Success');
  assert.deepEqual(seen, [
    { traceParent, traceState: 'congo=t61rcWkgMzE', attributes: { OperationName: 'trace' } },
    undefined,
  ]);
  const { context } = InvocationContext.forTest();
  assert.equal(context.traceContext, undefined);
});
