'use strict';
/**
 * The console bridge: `console.log/info/debug/warn/error` called while a
 * handler runs (after any number of awaits) become that invocation's `RpcLog`
 * lines, as the Python SDK's logging bridge does; called anywhere else they
 * write to the process's stdout/stderr as before, which the host forwards to
 * its own log.
 *
 * The dispatcher runs each handler inside {@link runInInvocation}, so the
 * invocation's context follows its promise chains and timers
 * (`AsyncLocalStorage`). The runtime installs the bridge on the global
 * `console` for as long as the worker serves.
 *
 * @module fnhost-worker/console
 */

const { AsyncLocalStorage } = require('node:async_hooks');
const util = require('node:util');

/** `RpcLog` level of each bridged console method. */
const CONSOLE_LEVELS = Object.freeze({
  log: 'Information',
  info: 'Information',
  debug: 'Debug',
  warn: 'Warning',
  error: 'Error',
});

/** @type {AsyncLocalStorage<import('./context').InvocationContext>} */
const current = new AsyncLocalStorage();

/** Consoles the bridge is installed on → their own methods. */
const installed = new WeakMap();

/** True while a bridged line is being sent: a console call the send makes goes to the streams. */
let sending = false;

/**
 * Runs `fn` as part of `context`'s invocation: console calls in it, and in
 * everything it awaits or schedules, belong to that invocation.
 *
 * @template T
 * @param {import('./context').InvocationContext} context
 * @param {() => T} fn
 * @returns {T}
 */
function runInInvocation(context, fn) {
  return current.run(context, fn);
}

/**
 * The invocation whose handler is running here, or `undefined` outside one
 * and after its result was sent (a timer it left behind).
 *
 * @returns {import('./context').InvocationContext|undefined}
 */
function currentInvocation() {
  const context = current.getStore();
  return context === undefined || context._finished ? undefined : context;
}

/**
 * Replaces `target`'s `log`, `info`, `debug`, `warn` and `error` with the
 * bridge. Installing twice on one console changes nothing.
 *
 * @param {Console} [target=console]
 * @returns {() => void} puts the console's own methods back
 */
function installConsoleBridge(target = console) {
  if (installed.has(target)) return () => {};
  const own = {};
  for (const [method, level] of Object.entries(CONSOLE_LEVELS)) {
    const original = target[method];
    own[method] = original;
    target[method] = function bridged(...args) {
      const context = currentInvocation();
      if (context === undefined || sending) return original.apply(this, args);
      sending = true;
      try {
        context.log(level, util.format(...args));
      } finally {
        sending = false;
      }
      return undefined;
    };
  }
  installed.set(target, own);
  return () => {
    if (installed.get(target) !== own) return;
    Object.assign(target, own);
    installed.delete(target);
  };
}

module.exports = { CONSOLE_LEVELS, installConsoleBridge, runInInvocation, currentInvocation };
