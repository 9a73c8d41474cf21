'use strict';
/**
 * fnhost Node.js worker SDK.
 *
 * Register handlers by function name and run: the worker parses the host's
 * launch arguments (both spellings), dials back, and serves invocations
 * concurrently. Each invocation's `context.signal` is aborted when the host
 * cancels it; a handler that then rejects (typically with an `AbortError`)
 * is answered `Cancelled`. `console.log/info/debug/warn/error` in a handler
 * are that invocation's log lines (`context.log` and friends too).
 *
 * @example
 * const { Worker } = require('fnhost-worker');
 * new Worker()
 *   .function('hello', async (context, input) => `hello ${input.text()}`)
 *   .main();
 *
 * @example
 * // HTTP triggers as in Azure's v4 model; with worker indexing the worker
 * // reports them to the host, so the app needs no function.json.
 * const { Worker, HttpResponse } = require('fnhost-worker');
 * new Worker({ workerIndexing: true })
 *   .http('hello', (context, input) => new HttpResponse(200, { body: 'hello' }))
 *   .http('item', {
 *     route: 'items/{id:int}',
 *     methods: ['GET'],
 *     authLevel: 'anonymous',
 *     handler: (context, input) => new HttpResponse(200, { body: `item ${input.http.params.id}` }),
 *   })
 *   .function('job', async (context) => context.info('running the job')) // manualTrigger
 *   .timer('tick', {
 *     schedule: '0 * * * * *', // every minute (NCRONTAB, seconds first)
 *     handler: (context, input) => context.info(`due at ${input.timer().scheduleStatus.next}`),
 *   })
 *   .main();
 *
 * @module fnhost-worker
 */

const { parseLaunchArgs, ArgsError } = require('./args');
const { Dispatcher, BoundedSet } = require('./dispatcher');
const { InvocationContext, isAbortError } = require('./context');
const { Input, HttpResponse, toTypedData } = require('./io');
const runtime = require('./runtime');
const { AUTH_LEVELS, MANUAL, httpTrigger, timerTrigger } = require('./triggers');

/** A worker: a set of named function handlers and the loop that serves them. */
class Worker {
  /**
   * @param {object} [options]
   * @param {boolean} [options.workerIndexing=false] the worker indexes its own
   *   functions: it advertises `WorkerIndexing` and, when the host asks for
   *   metadata, lists them with their triggers as `raw_bindings`. Off, the
   *   host reads `function.json` files.
   */
  constructor({ workerIndexing = false } = {}) {
    /** @type {Map<string, import('./dispatcher').Handler>} */
    this._functions = new Map();
    /** @type {Map<string, import('./triggers').Trigger>} */
    this._triggers = new Map();
    this._workerIndexing = Boolean(workerIndexing);
  }

  /**
   * Registers `handler` for the function called `name` (the folder name of
   * its `function.json`). With worker indexing it is reported with a
   * `manualTrigger` (admin and async invokes only); without it, its
   * `function.json` decides the trigger. Returns `this` for chaining.
   *
   * @param {string} name
   * @param {import('./dispatcher').Handler} handler
   * @returns {Worker}
   */
  function(name, handler) {
    return this._register(name, handler, MANUAL);
  }

  /**
   * Registers an HTTP-triggered function, as Azure's v4 `app.http(name,
   * options)` does. `options` is the handler alone (served at `/api/<name>`,
   * every method, `authLevel` `'function'`) or an object `{ handler, route,
   * methods, authLevel }` (`authLevel`: `'anonymous'`, `'function'` or
   * `'admin'`). Returns `this` for chaining.
   *
   * @param {string} name
   * @param {import('./dispatcher').Handler | HttpOptions} options
   * @returns {Worker}
   */
  http(name, options) {
    const { handler, ...trigger } = typeof options === 'function' ? { handler: options } : options || {};
    return this._register(name, handler, httpTrigger(name, trigger));
  }

  /**
   * Registers a timer-triggered function, as Azure's v4 `app.timer(name,
   * options)` does. `options` is `{ handler, schedule, runOnStartup }`:
   * `schedule` a 6-field NCRONTAB expression, seconds first (`'0 * * * * *'`:
   * every minute), or a TimeSpan (`'00:05:00'`); `runOnStartup` (default
   * `false`) also runs it when the host starts. Each tick's input is Azure's
   * `TimerInfo` JSON, parsed by `input.timer()`. Returns `this` for chaining.
   *
   * @param {string} name
   * @param {TimerOptions} options
   * @returns {Worker}
   */
  timer(name, options) {
    const { handler, ...trigger } = options || {};
    return this._register(name, handler, timerTrigger(name, trigger));
  }

  /** Registered handlers by function name (a copy). @type {Map<string, import('./dispatcher').Handler>} */
  get functions() {
    return new Map(this._functions);
  }

  /** Registered triggers by function name (a copy). @type {Map<string, import('./triggers').Trigger>} */
  get triggers() {
    return new Map(this._triggers);
  }

  /** Whether the worker indexes its own functions. @type {boolean} */
  get workerIndexing() {
    return this._workerIndexing;
  }

  _register(name, handler, trigger) {
    if (typeof name !== 'string' || name === '') throw new TypeError('function name must be a non-empty string');
    if (typeof handler !== 'function') throw new TypeError(`handler for '${name}' must be a function`);
    if (this._functions.has(name)) throw new Error(`function '${name}' is registered twice`);
    this._functions.set(name, handler);
    this._triggers.set(name, trigger);
    return this;
  }

  /**
   * Connects to the host and serves until the host terminates the worker,
   * ends the stream, or the process gets SIGTERM.
   *
   * @param {string[]} [argv=process.argv.slice(2)] launch arguments
   * @returns {Promise<void>}
   * @throws {ArgsError} bad launch arguments
   * @throws {runtime.ConnectError} the host is unreachable
   */
  async run(argv = process.argv.slice(2)) {
    const args = parseLaunchArgs(argv);
    await runtime.run(this._functions, args, { triggers: this._triggers, workerIndexing: this._workerIndexing });
  }

  /**
   * {@link Worker#run}, then exits the process: 0 after an orderly stop, 2
   * for bad launch arguments, 1 for other failures. Exiting explicitly also
   * stops handlers that ignored cancellation.
   *
   * @param {string[]} [argv=process.argv.slice(2)]
   */
  main(argv = process.argv.slice(2)) {
    this.run(argv).then(
      () => process.exit(0),
      (err) => {
        process.stderr.write(`fnhost-worker: ${err && err.message ? err.message : err}\n`);
        process.exit(err instanceof ArgsError ? 2 : 1);
      },
    );
  }
}

/**
 * Options of {@link Worker#http}.
 *
 * @typedef {object} HttpOptions
 * @property {import('./dispatcher').Handler} handler
 * @property {string} [route] route template, e.g. `items/{id:int}` (default: the name)
 * @property {string[]} [methods] e.g. `['GET', 'POST']` (default: every method)
 * @property {'anonymous'|'function'|'admin'} [authLevel='function']
 */

/**
 * Options of {@link Worker#timer}.
 *
 * @typedef {object} TimerOptions
 * @property {import('./dispatcher').Handler} handler
 * @property {string} schedule NCRONTAB (6 fields, seconds first) or TimeSpan, e.g. `'0 * * * * *'`
 * @property {boolean} [runOnStartup=false] also run when the host starts
 */

module.exports = {
  Worker,
  AUTH_LEVELS,
  InvocationContext,
  Input,
  HttpResponse,
  Dispatcher,
  BoundedSet,
  ArgsError,
  ConnectError: runtime.ConnectError,
  parseLaunchArgs,
  isAbortError,
  toTypedData,
};
