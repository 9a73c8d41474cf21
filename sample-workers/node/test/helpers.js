'use strict';
/** Shared helpers for the SDK's unit tests: a dispatcher wired to an in-memory outbox. */

const { Dispatcher } = require('../lib/dispatcher');
const { loadRpcPackage } = require('../lib/proto');

const { FunctionRpc } = loadRpcPackage();
const method = FunctionRpc.service.EventStream;

/**
 * Encodes a message the way the worker sends it and decodes it the way a
 * peer would, so tests see exactly what crosses the wire.
 *
 * @param {object} msg
 * @returns {object} decoded StreamingMessage
 */
function wire(msg) {
  return method.responseDeserialize(method.requestSerialize(msg));
}

/**
 * A dispatcher whose outgoing messages are round-tripped through the protobuf
 * encoder and collected in `sent`.
 *
 * @param {Record<string, Function>} handlers
 */
function harness(handlers, options = {}) {
  const sent = [];
  const waiters = [];
  const dispatcher = new Dispatcher({
    functions: new Map(Object.entries(handlers)),
    send: (msg) => {
      sent.push(wire(msg));
      for (const w of waiters.splice(0)) w();
    },
    ...options,
  });
  const h = {
    dispatcher,
    sent,
    /** Delivers a host message (given as a plain object, encoded and decoded first). */
    deliver(msg) {
      return dispatcher.handleMessage(wire(msg));
    },
    /** Loads every handler under function id `id-<name>`. */
    loadAll() {
      for (const name of Object.keys(handlers)) {
        h.deliver({ function_load_request: { function_id: `id-${name}`, metadata: { name } } });
      }
      sent.length = 0;
    },
    invoke(invocationId, name, text = '') {
      return h.deliver({
        invocation_request: {
          invocation_id: invocationId,
          function_id: `id-${name}`,
          input_data: [{ name: 'input', data: { string: text } }],
        },
      });
    },
    /** Delivers an InvocationCancel; `reason` is its fnhost `reason` field (absent when empty). */
    cancel(invocationId, graceMs = 1000, reason = '') {
      const cancel = { invocation_id: invocationId, grace_period: { seconds: 0, nanos: graceMs * 1e6 } };
      if (reason !== '') cancel.reason = reason;
      return h.deliver({ invocation_cancel: cancel });
    },
    /** Resolves with the InvocationResponse for `invocationId` once it is sent. */
    async response(invocationId, timeoutMs = 2000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const found = sent.find(
          (m) => m.content === 'invocation_response' && m.invocation_response.invocation_id === invocationId,
        );
        if (found) return found.invocation_response;
        if (Date.now() > deadline) throw new Error(`no response for ${invocationId} within ${timeoutMs} ms`);
        await new Promise((resolve) => {
          waiters.push(resolve);
          setTimeout(resolve, 20);
        });
      }
    },
  };
  return h;
}

module.exports = { harness, wire };
