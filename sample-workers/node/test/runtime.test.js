'use strict';
/**
 * The runtime against a fake host on 127.0.0.1: the sample app is launched as
 * a real process, dials back, and is driven over a real EventStream. Checks
 * what only the network loop does: StartStream first, request_id on every
 * message, and cancelling in-flight work on WorkerTerminate and SIGTERM.
 */

const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { spawn } = require('node:child_process');
const grpc = require('@grpc/grpc-js');
const { loadRpcPackage } = require('../lib/proto');

const APP = path.join(__dirname, '../../node-app/index.js');

/** A one-connection fake host: resolves `stream()` with a reader/writer for the worker's stream. */
async function fakeHost() {
  const { FunctionRpc } = loadRpcPackage();
  const server = new grpc.Server();
  let deliver;
  const connected = new Promise((resolve) => {
    deliver = resolve;
  });
  server.addService(FunctionRpc.service, {
    EventStream(call) {
      const queue = [];
      const waiters = [];
      let ended = false;
      const wake = () => waiters.splice(0).forEach((w) => w());
      call.on('data', (m) => {
        queue.push(m);
        wake();
      });
      call.on('end', () => {
        ended = true;
        call.end();
        wake();
      });
      call.on('error', () => {
        ended = true;
        wake();
      });
      deliver({
        send: (m) => call.write(m),
        /** The next message from the worker, or null once its side is closed. */
        async next(timeoutMs = 5000) {
          const deadline = Date.now() + timeoutMs;
          while (queue.length === 0 && !ended) {
            if (Date.now() > deadline) throw new Error('no message from the worker in time');
            await new Promise((resolve) => {
              waiters.push(resolve);
              setTimeout(resolve, 50);
            });
          }
          return queue.length > 0 ? queue.shift() : null;
        },
      });
    },
  });
  const port = await new Promise((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return {
    port,
    /** The worker's stream, once it connects (rejects after 10 s). */
    stream: () => within(connected, 10000, 'the worker did not open its event stream'),
    close: () => server.forceShutdown(),
  };
}

/** `promise`, or a rejection naming `what` after `ms`. */
function within(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Launches the sample app; the process is killed when the test ends. */
function launch(t, args) {
  const child = spawn(process.execPath, [APP, ...args], { stdio: ['ignore', 'inherit', 'inherit'] });
  const exit = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return { child, exited: within(exit, 10000, 'the worker did not exit') };
}

/** StartStream, init and status; returns the stream. */
async function handshake(host, requestId) {
  const s = await host.stream();
  const first = await s.next();
  assert.equal(first.content, 'start_stream');
  assert.equal(first.start_stream.worker_id, 'w-1');
  assert.equal(first.request_id, requestId);
  s.send({ request_id: 'host', worker_init_request: { host_version: 'test' } });
  const init = await s.next();
  assert.equal(init.content, 'worker_init_response');
  assert.equal(init.request_id, requestId);
  assert.equal(init.worker_init_response.capabilities.HandlesInvocationCancelMessage, 'true');
  s.send({ worker_status_request: {} });
  assert.equal((await s.next()).content, 'worker_status_response');
  return s;
}

/** Handshake, load `sleep`, start a 60 s sleep; returns the stream. */
async function startSleep(host, requestId) {
  const s = await handshake(host, requestId);
  s.send({ function_load_request: { function_id: 'f-sleep', metadata: { name: 'sleep' } } });
  const load = await s.next();
  assert.equal(load.function_load_response.result.status, 'Success');
  s.send({
    invocation_request: {
      invocation_id: 'i-1',
      function_id: 'f-sleep',
      input_data: [{ name: 'input', data: { string: '60000' } }],
    },
  });
  return s;
}

/** Collects messages until the worker closes its side; returns them. */
async function rest(s) {
  const out = [];
  for (let m = await s.next(8000); m !== null; m = await s.next(8000)) out.push(m);
  return out;
}

test('older-style launch: WorkerTerminate cancels the in-flight sleep, replies, and exits 0', { timeout: 30000 }, async (t) => {
  const host = await fakeHost();
  t.after(() => host.close());
  const { exited } = launch(t, [
    '--host', '127.0.0.1', '--port', String(host.port), '--workerId', 'w-1', '--requestId', 'req-old',
    '--grpcMaxMessageLength', '1048576',
  ]);
  const s = await startSleep(host, 'req-old');
  await new Promise((resolve) => setTimeout(resolve, 100));
  s.send({ worker_terminate: { grace_period: { seconds: 2 } } });
  const messages = await rest(s);
  const response = messages.find((m) => m.content === 'invocation_response');
  assert.ok(response, `an invocation response arrived: ${JSON.stringify(messages)}`);
  assert.equal(response.invocation_response.invocation_id, 'i-1');
  assert.equal(response.invocation_response.result.status, 'Cancelled');
  assert.ok(messages.every((m) => m.request_id === 'req-old'), 'every message carries the request id');
  assert.deepEqual(await exited, { code: 0, signal: null });
});

test('newer-style launch: SIGTERM cancels the in-flight sleep, replies, and exits 0', { timeout: 30000 }, async (t) => {
  const host = await fakeHost();
  t.after(() => host.close());
  const { child, exited } = launch(t, [
    '--functions-uri', `http://127.0.0.1:${host.port}/`, '--functions-worker-id', 'w-1',
    '--functions-request-id', 'req-new',
  ]);
  const s = await startSleep(host, 'req-new');
  await new Promise((resolve) => setTimeout(resolve, 100));
  child.kill('SIGTERM');
  const messages = await rest(s);
  const response = messages.find((m) => m.content === 'invocation_response');
  assert.ok(response, `an invocation response arrived: ${JSON.stringify(messages)}`);
  assert.equal(response.invocation_response.result.status, 'Cancelled');
  assert.ok(messages.every((m) => m.request_id === 'req-new'));
  assert.deepEqual(await exited, { code: 0, signal: null });
});

test("in a worker process, a handler's console calls reach the host as its log lines", { timeout: 30000 }, async (t) => {
  const host = await fakeHost();
  t.after(() => host.close());
  const { child, exited } = launch(t, [
    '--functions-uri', `http://127.0.0.1:${host.port}/`, '--functions-worker-id', 'w-1',
    '--functions-request-id', 'req-console',
  ]);
  const s = await handshake(host, 'req-console');
  s.send({ function_load_request: { function_id: 'f-console', metadata: { name: 'console' } } });
  assert.equal((await s.next()).function_load_response.result.status, 'Success');
  s.send({ invocation_request: { invocation_id: 'i-c', function_id: 'f-console', input_data: [] } });
  const logs = [];
  for (;;) {
    const m = await s.next();
    assert.ok(m, 'the worker answered');
    if (m.content === 'rpc_log') logs.push([m.rpc_log.invocation_id, m.rpc_log.level, m.rpc_log.message]);
    if (m.content === 'invocation_response') {
      assert.equal(m.invocation_response.result.status, 'Success');
      break;
    }
  }
  assert.deepEqual(logs, [
    ['i-c', 'Information', 'console.log from console function'],
    ['i-c', 'Debug', 'console.debug from console function'],
    ['i-c', 'Warning', 'console.warn from console function'],
    ['i-c', 'Error', 'console.error from console function'],
  ]);
  child.kill('SIGTERM');
  assert.equal((await exited).code, 0);
});

test('bad launch arguments exit with code 2', async (t) => {
  const { exited } = launch(t, ['--workerId', 'w']);
  assert.equal((await exited).code, 2);
});
