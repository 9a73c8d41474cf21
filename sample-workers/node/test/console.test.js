'use strict';
/**
 * The console bridge: console calls in a handler (across awaits) are that
 * invocation's RpcLog lines at their level; anywhere else, and after the
 * result was sent, they go to the process's streams.
 */

const test = require('node:test');
const assert = require('node:assert/strict');
const util = require('node:util');
const { setTimeout: sleep } = require('node:timers/promises');
const { harness } = require('./helpers');
const { CONSOLE_LEVELS, installConsoleBridge } = require('../lib/console');

/**
 * Installs the bridge on the global console for the test, over stand-ins for
 * its own methods that collect `[method, text]` in the returned array (what
 * would have reached stdout/stderr).
 */
function bridged(t) {
  const streams = [];
  const saved = {};
  for (const method of Object.keys(CONSOLE_LEVELS)) {
    saved[method] = console[method];
    console[method] = (...args) => streams.push([method, util.format(...args)]);
  }
  const restore = installConsoleBridge(console);
  t.after(() => {
    restore();
    Object.assign(console, saved);
  });
  return streams;
}

/** `[invocation_id, level, message]` of every RpcLog sent. */
function logLines(h) {
  return h.sent
    .filter((m) => m.content === 'rpc_log')
    .map(({ rpc_log: log }) => [log.invocation_id, log.level, log.message]);
}

test('console calls in a handler, before and after awaits, are its log lines at their levels', async (t) => {
  const streams = bridged(t);
  const h = harness({
    chatty: async () => {
      console.log('log line');
      console.info('info line');
      await sleep(5);
      console.debug('debug line');
      await Promise.resolve();
      console.warn('warn line');
      await new Promise((resolve) => setImmediate(resolve));
      console.error('error line');
      return 'done';
    },
  });
  h.loadAll();
  h.invoke('i1', 'chatty');
  assert.equal((await h.response('i1')).result.status, 'Success');
  assert.deepEqual(logLines(h), [
    ['i1', 'Information', 'log line'],
    ['i1', 'Information', 'info line'],
    ['i1', 'Debug', 'debug line'],
    ['i1', 'Warning', 'warn line'],
    ['i1', 'Error', 'error line'],
  ]);
  const log = h.sent.find((m) => m.content === 'rpc_log').rpc_log;
  assert.equal(log.category, 'chatty');
  assert.equal(log.log_category, 'User');
  assert.deepEqual(streams, [], 'nothing reached the process streams');
});

test('a console line is formatted as console formats its arguments', async (t) => {
  bridged(t);
  const h = harness({ fmt: () => console.warn('%s=%d', 'n', 42, { a: [1] }) });
  h.loadAll();
  h.invoke('i1', 'fmt');
  await h.response('i1');
  assert.deepEqual(logLines(h), [['i1', 'Warning', 'n=42 { a: [ 1 ] }']]);
});

test('console calls outside an invocation go to the process streams and send nothing', (t) => {
  const streams = bridged(t);
  const h = harness({ noop: () => undefined });
  console.log('at startup');
  console.error('also at startup');
  assert.deepEqual(streams, [
    ['log', 'at startup'],
    ['error', 'also at startup'],
  ]);
  assert.deepEqual(h.sent, []);
});

test('concurrent invocations each get their own console lines', async (t) => {
  bridged(t);
  const h = harness({
    pair: async (context, input) => {
      const ms = Number(input.text());
      console.info(`start ${context.invocationId}`);
      await sleep(ms);
      console.warn(`end ${context.invocationId}`);
    },
  });
  h.loadAll();
  h.invoke('slow', 'pair', '30');
  h.invoke('fast', 'pair', '5');
  await Promise.all([h.response('slow'), h.response('fast')]);
  const lines = logLines(h);
  assert.deepEqual([...lines].sort(), [
    ['fast', 'Information', 'start fast'],
    ['fast', 'Warning', 'end fast'],
    ['slow', 'Information', 'start slow'],
    ['slow', 'Warning', 'end slow'],
  ]);
  assert.ok(lines.every(([id, , message]) => message.endsWith(id)), JSON.stringify(lines));
});

test('a console call from work a handler left running goes to the streams once its result is sent', async (t) => {
  const streams = bridged(t);
  let later;
  const leftBehind = new Promise((resolve) => {
    later = resolve;
  });
  const h = harness({
    leaky: () => {
      setTimeout(() => {
        console.warn('after the result');
        later();
      }, 20);
      return 'returned';
    },
  });
  h.loadAll();
  h.invoke('i1', 'leaky');
  await h.response('i1');
  await leftBehind;
  assert.deepEqual(logLines(h), []);
  assert.deepEqual(streams, [['warn', 'after the result']]);
});

test("restoring puts the console's own methods back; installing twice changes nothing", () => {
  const target = { log() {}, info() {}, debug() {}, warn() {}, error() {} };
  const own = { ...target };
  const restore = installConsoleBridge(target);
  assert.notEqual(target.warn, own.warn);
  const bridgedWarn = target.warn;
  installConsoleBridge(target)();
  assert.equal(target.warn, bridgedWarn, 'the second install (and its restore) did nothing');
  restore();
  assert.deepEqual({ ...target }, own);
});
