'use strict';
/**
 * The worker's protocol state, independent of the network.
 *
 * {@link Dispatcher#handleMessage} takes one decoded host message and sends
 * its replies through the `send` callback; invocations run as promises and
 * send their log lines and `InvocationResponse` through the same callback
 * when they happen. The network loop (`runtime.js`) only moves messages
 * between the stream and the dispatcher, which is what lets the unit tests
 * drive it without a host.
 *
 * @module fnhost-worker/dispatcher
 */

const { runInInvocation } = require('./console');
const { InvocationContext, isAbortError, abortReason, fromRpcTraceContext, fromTriggerMetadata } = require('./context');
const { Input, toTypedData } = require('./io');
const { durationToMs } = require('./proto');
const { MANUAL, functionMetadata } = require('./triggers');

/** Grace period used when the host (or SIGTERM) gives none, in ms. */
const DEFAULT_GRACE_MS = 5000;
/** How many early cancels / finished invocation ids are remembered. */
const REMEMBERED_IDS = 10000;
/** Capabilities advertised in `WorkerInitResponse`. */
const CAPABILITIES = Object.freeze({
  HandlesInvocationCancelMessage: 'true',
  WorkerStatus: 'true',
  RpcHttpBodyOnly: 'true',
  RawHttpBodyBytes: 'true',
});
/** Advertised in addition when the worker indexes its own functions. */
const WORKER_INDEXING = 'WorkerIndexing';
/** Lifecycle hooks: loaded by the host from host.json, never listed as invokable functions. */
const LIFECYCLE_HOOKS = Object.freeze(['initializer', 'preStop']);
const SDK_VERSION = require('../package.json').version;

/** A set of the most recent ids, evicting the oldest beyond its capacity. */
class BoundedSet {
  /** @param {number} capacity */
  constructor(capacity) {
    this.capacity = capacity;
    /** @type {Set<string>} insertion-ordered */
    this.set = new Set();
  }

  /** @param {string} id */
  add(id) {
    if (this.set.has(id)) return;
    this.set.add(id);
    while (this.set.size > this.capacity) {
      this.set.delete(this.set.values().next().value);
    }
  }

  /** Removes `id`; returns whether it was present. @param {string} id */
  take(id) {
    return this.set.delete(id);
  }

  /** @param {string} id */
  has(id) {
    return this.set.has(id);
  }

  /** @type {number} */
  get size() {
    return this.set.size;
  }
}

/**
 * A function handler: receives the invocation's context and input and
 * returns (or resolves to) the output. Throwing/rejecting fails the
 * invocation; rejecting with an `AbortError` (or any error once
 * `context.signal` is aborted) answers it `Cancelled`.
 *
 * @callback Handler
 * @param {InvocationContext} context
 * @param {Input} input
 * @returns {*|Promise<*>}
 */

/** Protocol state of one worker: loaded functions and in-flight invocations. */
class Dispatcher {
  /**
   * @param {object} options
   * @param {Map<string, Handler>} options.functions function name → handler
   * @param {(msg: object) => void} options.send sends one `StreamingMessage`
   *   (without `request_id`; the runtime stamps it)
   * @param {number} [options.rememberedIds] capacity of the early-cancel and
   *   finished-id sets
   * @param {Map<string, import('./triggers').Trigger>} [options.triggers]
   *   function name → trigger reported with worker indexing (manual when absent)
   * @param {boolean} [options.workerIndexing=false] advertise `WorkerIndexing`
   *   and list the functions when the host asks for metadata
   */
  constructor({ functions, send, rememberedIds = REMEMBERED_IDS, triggers = new Map(), workerIndexing = false }) {
    this._functions = functions;
    this._triggers = triggers;
    this._workerIndexing = workerIndexing;
    this._send = send;
    /** function_id → {name, handler} */
    this._loaded = new Map();
    /** invocation_id → {controller, context} of every invocation whose result is not sent yet */
    this._inFlight = new Map();
    this._earlyCancels = new BoundedSet(rememberedIds);
    this._finished = new BoundedSet(rememberedIds);
    this._shuttingDown = false;
    /** @type {Array<() => void>} */
    this._idleWaiters = [];
  }

  /** Number of invocations whose result has not been sent yet. @type {number} */
  get inFlight() {
    return this._inFlight.size;
  }

  /** Ids of cancels that arrived before their request (for tests). @type {number} */
  get earlyCancelCount() {
    return this._earlyCancels.size;
  }

  /**
   * Aborts every in-flight invocation and answers later requests with
   * `Cancelled` (used for `WorkerTerminate`, SIGTERM and a lost stream).
   */
  cancelAll() {
    this._shuttingDown = true;
    for (const { controller } of this._inFlight.values()) {
      controller.abort(abortReason('the worker is shutting down'));
    }
  }

  /**
   * Resolves once no invocation is in flight.
   *
   * @returns {Promise<void>}
   */
  idle() {
    if (this._inFlight.size === 0) return Promise.resolve();
    return new Promise((resolve) => this._idleWaiters.push(resolve));
  }

  /**
   * Handles one decoded host message.
   *
   * @param {object} msg decoded `StreamingMessage`
   * @returns {{terminateGraceMs: number}|null} non-null when the host asked
   *   the worker to terminate
   */
  handleMessage(msg) {
    switch (msg.content) {
      case 'worker_init_request':
        this._send({ worker_init_response: this._initResponse() });
        return null;
      case 'function_load_request':
        this._send({ function_load_response: this._load(msg.function_load_request) });
        return null;
      case 'function_load_request_collection': {
        const requests = msg.function_load_request_collection.function_load_requests || [];
        this._send({
          function_load_response_collection: {
            function_load_responses: requests.map((r) => this._load(r)),
          },
        });
        return null;
      }
      case 'functions_metadata_request':
        this._send({ function_metadata_response: this._metadataResponse() });
        return null;
      case 'worker_status_request':
        this._send({ worker_status_response: {} });
        return null;
      case 'invocation_request':
        this._invoke(msg.invocation_request);
        return null;
      case 'invocation_cancel':
        this._cancel(msg.invocation_cancel.invocation_id, msg.invocation_cancel.reason);
        return null;
      case 'worker_terminate':
        return { terminateGraceMs: durationToMs(msg.worker_terminate.grace_period, DEFAULT_GRACE_MS) };
      default:
        return null; // heartbeats, reload requests, ...: nothing to do
    }
  }

  _initResponse() {
    const capabilities = { ...CAPABILITIES };
    if (this._workerIndexing) capabilities[WORKER_INDEXING] = 'true';
    return {
      worker_version: SDK_VERSION,
      capabilities,
      result: { status: 'Success' },
      worker_metadata: {
        runtime_name: 'node',
        runtime_version: process.versions.node,
        worker_version: SDK_VERSION,
        worker_bitness: process.arch,
      },
    };
  }

  _metadataResponse() {
    if (!this._workerIndexing) {
      // Functions are described by function.json files (host indexing).
      return { use_default_metadata_indexing: true, result: { status: 'Success' } };
    }
    const names = [...this._functions.keys()].filter((n) => !LIFECYCLE_HOOKS.includes(n)).sort();
    return {
      function_metadata_results: names.map((n) => functionMetadata(n, this._triggers.get(n) || MANUAL)),
      result: { status: 'Success' },
      use_default_metadata_indexing: false,
    };
  }

  _load(req) {
    const name = (req.metadata && req.metadata.name) || '';
    const handler = this._functions.get(name);
    let result;
    if (handler) {
      this._loaded.set(req.function_id, { name, handler });
      result = { status: 'Success' };
    } else {
      const registered = [...this._functions.keys()].sort().join(', ');
      result = failure(
        `no handler registered for function '${name}' in this worker (registered: ${registered})`,
      );
    }
    return { function_id: req.function_id, result };
  }

  _answer(id, result, returnValue = null) {
    const response = { invocation_id: id, result };
    if (returnValue !== null) response.return_value = returnValue;
    this._send({ invocation_response: response });
  }

  _invoke(req) {
    const id = req.invocation_id;
    if (this._inFlight.has(id)) return; // duplicate request: the first one answers
    if (this._earlyCancels.take(id) || this._shuttingDown) {
      this._finished.add(id);
      this._answer(id, { status: 'Cancelled' });
      return;
    }
    const fn = this._loaded.get(req.function_id);
    if (!fn) {
      this._finished.add(id);
      this._answer(id, failure(`function id ${req.function_id} was not loaded`));
      return;
    }
    const controller = new AbortController();
    const context = new InvocationContext({
      invocationId: id,
      functionName: fn.name,
      signal: controller.signal,
      emitLog: (log) => this._send({ rpc_log: log }),
      traceContext: fromRpcTraceContext(req.trace_context),
      ...fromTriggerMetadata(req.trigger_metadata),
    });
    this._inFlight.set(id, { controller, context });
    let running;
    try {
      const input = Input.fromRequest(req);
      running = Promise.resolve(runInInvocation(context, () => fn.handler(context, input)));
    } catch (err) {
      running = Promise.reject(err);
    }
    running
      .then((value) => ({ result: { status: 'Success' }, returnValue: toTypedData(value) }))
      .catch((err) => ({
        result: isAbortError(err) || controller.signal.aborted
          ? { status: 'Cancelled' }
          : userFailure(err, fn.name),
        returnValue: null,
      }))
      .then(({ result, returnValue }) => this._finish(id, result, returnValue));
  }

  /** Sends the response and forgets the invocation's state. */
  _finish(id, result, returnValue) {
    const entry = this._inFlight.get(id);
    if (entry) entry.context._markFinished();
    this._inFlight.delete(id);
    this._finished.add(id);
    this._answer(id, result, returnValue);
    if (this._inFlight.size === 0) {
      const waiters = this._idleWaiters.splice(0);
      for (const resolve of waiters) resolve();
    }
  }

  /**
   * Aborts an invocation's signal: with the host's `reason` string when it
   * gave one (also recorded as `context.cancelReason`), else with an
   * `AbortError`. A later cancel never changes `signal.reason`, and sets
   * `cancelReason` only when no earlier cancel gave a reason (the first
   * reason stands, as in the Rust SDK).
   *
   * @param {string} id
   * @param {string} [reason] `InvocationCancel.reason`; empty when none
   */
  _cancel(id, reason = '') {
    const entry = this._inFlight.get(id);
    if (entry) {
      const { controller, context } = entry;
      const why = typeof reason === 'string' ? reason : '';
      context._noteCancelReason(why); // before abort: listeners see it
      controller.abort(why !== '' ? why : abortReason(`invocation ${id} was cancelled by the host`));
    } else if (!this._finished.has(id)) {
      this._earlyCancels.add(id); // the request is still on its way
    }
  }
}

function failure(message) {
  return { status: 'Failure', exception: { message } };
}

function userFailure(err, functionName) {
  const isError = err instanceof Error;
  const message = isError ? err.message : String(err);
  return {
    status: 'Failure',
    exception: {
      message: message || (isError ? err.name : 'handler rejected without a reason'),
      stack_trace: isError && err.stack ? err.stack : '',
      source: functionName,
      type: isError ? err.name : typeof err,
      is_user_exception: true,
    },
  };
}

module.exports = { Dispatcher, BoundedSet, DEFAULT_GRACE_MS, REMEMBERED_IDS, CAPABILITIES };
