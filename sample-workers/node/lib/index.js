'use strict';
/**
 * fnhost Node.js worker SDK.
 *
 * Register handlers by function name and run: the worker parses the host's
 * launch arguments (both spellings), dials back, and serves invocations
 * concurrently. Each invocation's `context.signal` is aborted when the host
 * cancels it; a handler that then rejects (typically with an `AbortError`)
 * is answered `Cancelled`.
 *
 * @example
 * const { Worker } = require('fnhost-node-worker');
 * new Worker()
 *   .function('hello', async (context, input) => `hello ${input.text()}`)
 *   .main();
 *
 * @module fnhost-node-worker
 */

const { parseLaunchArgs, ArgsError } = require('./args');
const { Dispatcher, BoundedSet } = require('./dispatcher');
const { InvocationContext, isAbortError } = require('./context');
const { Input, HttpResponse, toTypedData } = require('./io');
const runtime = require('./runtime');

/** A worker: a set of named function handlers and the loop that serves them. */
class Worker {
  constructor() {
    /** @type {Map<string, import('./dispatcher').Handler>} */
    this._functions = new Map();
  }

  /**
   * Registers `handler` for the function called `name` (the folder name of
   * its `function.json`). Returns `this` for chaining.
   *
   * @param {string} name
   * @param {import('./dispatcher').Handler} handler
   * @returns {Worker}
   */
  function(name, handler) {
    if (typeof name !== 'string' || name === '') throw new TypeError('function name must be a non-empty string');
    if (typeof handler !== 'function') throw new TypeError(`handler for '${name}' must be a function`);
    if (this._functions.has(name)) throw new Error(`function '${name}' is registered twice`);
    this._functions.set(name, handler);
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
    await runtime.run(this._functions, args);
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
        process.stderr.write(`fnhost-node-worker: ${err && err.message ? err.message : err}\n`);
        process.exit(err instanceof ArgsError ? 2 : 1);
      },
    );
  }
}

module.exports = {
  Worker,
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
