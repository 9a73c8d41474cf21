'use strict';
/**
 * Per-invocation {@link InvocationContext}: identity, cancellation through an
 * `AbortSignal`, the timeout's deadline and the attempt, the trace it runs
 * in, and logging tied to the invocation.
 *
 * @module fnhost-worker/context
 */

/** Log levels of `RpcLog.Level`, lowest first. */
const LOG_LEVELS = Object.freeze(['Trace', 'Debug', 'Information', 'Warning', 'Error', 'Critical']);

/**
 * Trigger metadata keys fnhost adds to every `InvocationRequest`, since the
 * protocol has no fields for them: `TypedData.json` of a number each (JSON
 * because the published Python worker has no `int` kind).
 * `FnhostDeadline`: Unix ms (UTC) at which the host's function timeout fires.
 * `FnhostAttempt`: 1 for the first run of an async event and for every
 * synchronous invocation, 2 for its first retry, and so on.
 */
const META_DEADLINE = 'FnhostDeadline';
const META_ATTEMPT = 'FnhostAttempt';

/**
 * The number a decoded trigger metadata `TypedData` holds (`json`, `int` or
 * `double`), or `undefined` when it holds none.
 *
 * @param {object|undefined} data
 * @returns {number|undefined}
 */
function metadataNumber(data) {
  let value;
  switch (data && data.data) {
    case 'json':
      try {
        value = JSON.parse(data.json);
      } catch {
        return undefined;
      }
      break;
    case 'int':
      value = Number(data.int);
      break;
    case 'double':
      value = data.double;
      break;
    default:
      return undefined;
  }
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
}

/**
 * The deadline and attempt fnhost sent in an `InvocationRequest`'s trigger
 * metadata: `deadline` in Unix ms (`undefined` from a host that sends none),
 * `attempt` a positive integer (1 when absent or malformed).
 *
 * @param {Record<string, object>|null|undefined} metadata decoded `trigger_metadata`
 * @returns {{deadlineMs: number|undefined, attempt: number}}
 */
function fromTriggerMetadata(metadata) {
  const deadlineMs = metadataNumber(metadata && metadata[META_DEADLINE]);
  const attempt = metadataNumber(metadata && metadata[META_ATTEMPT]);
  return {
    deadlineMs,
    attempt: Number.isSafeInteger(attempt) && attempt >= 1 ? attempt : 1,
  };
}

/**
 * The `AbortSignal` reason used when the host cancels an invocation without
 * saying why (or the worker shuts down): a `DOMException` named `AbortError`.
 * When the host gives a reason, the signal is aborted with that string instead.
 *
 * @param {string} message
 * @returns {DOMException}
 */
function abortReason(message) {
  return new DOMException(message, 'AbortError');
}

/**
 * True when `err` reports an abort: an error named `AbortError` (what
 * `AbortSignal`-aware Node APIs reject with, and `signal.reason` for a host
 * cancel without a reason), directly or as its `cause`. A bare reason string
 * (what `signal.throwIfAborted()` throws after a cancel with a reason) is not
 * one: check `context.signal.aborted` for that.
 *
 * @param {*} err
 * @returns {boolean}
 */
function isAbortError(err) {
  if (!err || typeof err !== 'object') return false;
  if (err.name === 'AbortError' || err.code === 'ABORT_ERR') return true;
  return err.cause !== undefined && err.cause !== err && isAbortError(err.cause);
}

/**
 * The distributed trace an invocation runs in, shaped like `@azure/functions`
 * v4's `TraceContext`: `traceParent` is the W3C `traceparent` naming the
 * invocation's span (spans the handler starts are its children),
 * `traceState` the caller's `tracestate` (`''` when none), `attributes` extra
 * properties (fnhost sends `OperationName`, the function name).
 *
 * @typedef {object} TraceContext
 * @property {string} traceParent
 * @property {string} traceState
 * @property {Record<string, string>} attributes
 */

/**
 * The {@link TraceContext} of an `RpcTraceContext` (as decoded by the SDK's
 * proto loader), or `undefined` when there is none (as `@azure/functions` does).
 *
 * @param {{trace_parent?: string, trace_state?: string, attributes?: Record<string, string>}|null|undefined} rpc
 * @returns {TraceContext|undefined}
 */
function fromRpcTraceContext(rpc) {
  if (!rpc) return undefined;
  return {
    traceParent: rpc.trace_parent ?? '',
    traceState: rpc.trace_state ?? '',
    attributes: { ...(rpc.attributes ?? {}) },
  };
}

/**
 * What a handler knows about the invocation it runs.
 *
 * @example
 * const { setTimeout: sleep } = require('node:timers/promises');
 * async function handler(context, input) {
 *   context.info(`invocation ${context.invocationId} of ${context.functionName}`);
 *   await sleep(1000, undefined, { signal: context.signal }); // rejects with AbortError on cancel
 *   return 'done';
 * }
 */
class InvocationContext {
  /**
   * Created by the worker for each invocation; use
   * {@link InvocationContext.forTest} in unit tests.
   *
   * @param {object} init
   * @param {string} init.invocationId
   * @param {string} init.functionName
   * @param {AbortSignal} init.signal aborted when the host cancels the invocation
   * @param {(log: object) => void} [init.emitLog] receives each `RpcLog`; logs
   *   go to stderr when absent
   * @param {TraceContext} [init.traceContext] the trace it runs in
   * @param {number} [init.deadlineMs] Unix ms at which the function timeout fires
   * @param {number} [init.attempt=1] which run of an async event this is
   */
  constructor({ invocationId, functionName, signal, emitLog, traceContext, deadlineMs, attempt = 1 }) {
    this._invocationId = invocationId;
    this._functionName = functionName;
    this._signal = signal;
    this._emitLog = emitLog ?? null;
    this._traceContext = traceContext;
    this._deadlineMs = deadlineMs;
    this._attempt = attempt;
    /** @type {string|null} the host's reason, recorded by the dispatcher */
    this._cancelReason = null;
    /** Set once the result is sent: see _markFinished. */
    this._finished = false;
  }

  /**
   * Records the reason of a host cancel before the signal is aborted (called
   * by the SDK's dispatcher). An empty reason changes nothing; otherwise the
   * first one stands.
   *
   * @param {string} reason
   * @package
   */
  _noteCancelReason(reason) {
    if (this._cancelReason === null && typeof reason === 'string' && reason !== '') {
      this._cancelReason = reason;
    }
  }

  /**
   * Records that the invocation's result was sent (called by the SDK's
   * dispatcher): console calls from work it left running then go to the
   * process's stdout/stderr.
   *
   * @package
   */
  _markFinished() {
    this._finished = true;
  }

  /**
   * A context for unit-testing a handler outside a worker. Abort the returned
   * controller to simulate the host cancelling the invocation
   * (`controller.abort('lease lost')` for a cancel with a reason: a string
   * reason is also {@link InvocationContext#cancelReason}); log lines are
   * collected in `logs`.
   *
   * @param {string} [invocationId='test-invocation']
   * @param {string} [functionName='test']
   * @param {{traceContext?: TraceContext, deadline?: Date, attempt?: number}} [options]
   *   what {@link InvocationContext#traceContext}, {@link InvocationContext#deadline}
   *   and {@link InvocationContext#attempt} return (`undefined`, `undefined`
   *   and 1 when absent)
   * @returns {{context: InvocationContext, controller: AbortController, logs: object[]}}
   */
  static forTest(invocationId = 'test-invocation', functionName = 'test', { traceContext, deadline, attempt = 1 } = {}) {
    const controller = new AbortController();
    const logs = [];
    const context = new InvocationContext({
      invocationId,
      functionName,
      signal: controller.signal,
      emitLog: (log) => logs.push(log),
      traceContext,
      deadlineMs: deadline === undefined ? undefined : deadline.getTime(),
      attempt,
    });
    return { context, controller, logs };
  }

  /** The host's id of this invocation. @type {string} */
  get invocationId() {
    return this._invocationId;
  }

  /** The name of the function being invoked. @type {string} */
  get functionName() {
    return this._functionName;
  }

  /**
   * The distributed trace this invocation runs in, from the request's
   * `trace_context` (as `@azure/functions` v4's `context.traceContext`):
   * `{traceParent, traceState, attributes}`. `undefined` when the host sent
   * none.
   *
   * @example
   * function handler(context) {
   *   const traceparent = context.traceContext?.traceParent; // pass it on downstream
   *   return fetch('http://downstream/', { headers: traceparent ? { traceparent } : {} });
   * }
   *
   * @type {TraceContext|undefined}
   */
  get traceContext() {
    return this._traceContext;
  }

  /**
   * When the host's function timeout for this invocation fires (its cancel
   * follows, with reason `'timeout'`), from the request's `FnhostDeadline`
   * trigger metadata; `undefined` from a host that sends none. Use it to
   * give a downstream call no more time than is left.
   *
   * @example
   * async function handler(context) {
   *   const leftMs = context.deadline ? context.deadline.getTime() - Date.now() : Infinity;
   *   if (leftMs < 2000) throw new Error(`only ${leftMs} ms left: not starting the export`);
   *   return runExport({ signal: context.signal });
   * }
   *
   * @type {Date|undefined}
   */
  get deadline() {
    return this._deadlineMs === undefined ? undefined : new Date(this._deadlineMs);
  }

  /**
   * Which run of its event this is: 1 for the first run of an async event
   * and for every synchronous invocation, 2 for the first retry, and so on
   * (the request's `FnhostAttempt` trigger metadata; 1 when absent).
   *
   * @type {number}
   */
  get attempt() {
    return this._attempt;
  }

  /**
   * Aborted when the host cancels this invocation (or the worker is shutting
   * down); `signal.reason` is then the host's reason string when it gave one
   * (see {@link InvocationContext#cancelReason}), else an `AbortError`. Pass
   * it to APIs that take a signal, or check `signal.aborted` / call
   * `signal.throwIfAborted()`.
   *
   * @type {AbortSignal}
   */
  get signal() {
    return this._signal;
  }

  /** True once the invocation was cancelled. @type {boolean} */
  get isCancelled() {
    return this._signal.aborted;
  }

  /**
   * Why the host cancelled this invocation, once it did and said so:
   * `'timeout'`, `'host shutdown'`, `'client disconnect'`, `'terminate'`
   * or `'lease lost'` (another host took the event over, so this run is a
   * duplicate). `null` before a cancel, for a worker shutdown, and
   * from hosts that send no reason. The first reason stands: a later cancel
   * does not change it. Set before `signal` aborts, so an `abort` listener
   * sees it.
   *
   * @type {string|null}
   */
  get cancelReason() {
    if (this._cancelReason !== null) return this._cancelReason;
    // A context built around a signal aborted with a string (forTest).
    const { aborted, reason } = this._signal;
    return aborted && typeof reason === 'string' && reason !== '' ? reason : null;
  }

  /**
   * Sends a user log line for this invocation to the host.
   *
   * @param {'Trace'|'Debug'|'Information'|'Warning'|'Error'|'Critical'} level
   * @param {string} message
   */
  log(level, message) {
    if (!LOG_LEVELS.includes(level)) {
      throw new RangeError(`unknown log level ${JSON.stringify(level)}; expected one of ${LOG_LEVELS.join(', ')}`);
    }
    const log = {
      invocation_id: this._invocationId,
      category: this._functionName,
      level,
      message: String(message),
      log_category: 'User',
    };
    if (this._emitLog) {
      this._emitLog(log);
    } else {
      process.stderr.write(`[${level}] ${this._invocationId}: ${log.message}\n`);
    }
  }

  /** {@link InvocationContext#log} at `Debug`. @param {string} message */
  debug(message) {
    this.log('Debug', message);
  }

  /** {@link InvocationContext#log} at `Information`. @param {string} message */
  info(message) {
    this.log('Information', message);
  }

  /** {@link InvocationContext#log} at `Warning`. @param {string} message */
  warn(message) {
    this.log('Warning', message);
  }

  /** {@link InvocationContext#log} at `Error`. @param {string} message */
  error(message) {
    this.log('Error', message);
  }
}

module.exports = {
  InvocationContext,
  LOG_LEVELS,
  META_DEADLINE,
  META_ATTEMPT,
  isAbortError,
  abortReason,
  fromRpcTraceContext,
  fromTriggerMetadata,
};
