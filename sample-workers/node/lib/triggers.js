'use strict';
/**
 * How a function is triggered (HTTP, timer or manual), and the metadata a worker-indexing worker
 * reports for it.
 *
 * With worker indexing on, the host builds its functions from the
 * `FunctionMetadataResponse` instead of `function.json` files. Each
 * function's `raw_bindings` are the binding objects of a `function.json`,
 * serialized the way Azure's language workers send them.
 * This mirrors `worker-sdk/src/trigger.rs`.
 *
 * @module fnhost-worker/triggers
 */

/** Values of `authLevel`: who may call an HTTP-triggered function. */
const AUTH_LEVELS = Object.freeze(['anonymous', 'function', 'admin']);

/**
 * A trigger: `{ type: 'manual' }`, `{ type: 'http', route, methods,
 * authLevel }` with `route` and `methods` possibly `undefined` (served at
 * `/api/<name>`, every method), or `{ type: 'timer', schedule, runOnStartup }`.
 *
 * @typedef {{type: 'manual'}
 *   | {type: 'http', route?: string, methods?: string[], authLevel: string}
 *   | {type: 'timer', schedule: string, runOnStartup: boolean}} Trigger
 */

/** Options of an HTTP trigger besides its handler. */
const HTTP_OPTIONS = Object.freeze(['route', 'methods', 'authLevel']);

/** Options of a timer trigger besides its handler. */
const TIMER_OPTIONS = Object.freeze(['schedule', 'runOnStartup']);

/** @type {Trigger} */
const MANUAL = Object.freeze({ type: 'manual' });

/**
 * An HTTP trigger from registration options, with Azure's defaults: no
 * `route`, every method, `authLevel` `'function'`. Methods are kept
 * lowercase; `authLevel` may be in any case.
 *
 * @param {string} name the function's name (for error messages)
 * @param {{route?: string, methods?: string[], authLevel?: string}} [options]
 * @returns {Trigger}
 * @throws {TypeError} on an unknown option or auth level, or a malformed one
 */
function httpTrigger(name, options = {}) {
  const unknown = Object.keys(options).filter((k) => !HTTP_OPTIONS.includes(k));
  if (unknown.length > 0) {
    const known = ['handler', ...HTTP_OPTIONS].join(', ');
    throw new TypeError(`unknown HTTP trigger option(s) of '${name}': ${unknown.join(', ')} (known: ${known})`);
  }
  const { route, methods, authLevel = 'function' } = options;
  if (route !== undefined && typeof route !== 'string') {
    throw new TypeError(`route of '${name}' must be a string`);
  }
  if (methods !== undefined && (!Array.isArray(methods) || methods.some((m) => typeof m !== 'string'))) {
    throw new TypeError(`methods of '${name}' must be an array of strings`);
  }
  const level = String(authLevel).toLowerCase();
  if (!AUTH_LEVELS.includes(level)) {
    throw new TypeError(`authLevel of '${name}' is ${JSON.stringify(authLevel)}, not one of ${AUTH_LEVELS.join(', ')}`);
  }
  return Object.freeze({
    type: 'http',
    route,
    methods: methods && Object.freeze(methods.map((m) => m.toLowerCase())),
    authLevel: level,
  });
}

/**
 * A timer trigger from registration options: `schedule` (required) is a
 * 6-field NCRONTAB expression, seconds first (`'0 0 * * * *'`, hourly), or a
 * TimeSpan (`'00:05:00'`); `runOnStartup` (default `false`) also runs the
 * function when the host starts. The host checks the schedule itself.
 *
 * @param {string} name the function's name (for error messages)
 * @param {{schedule?: string, runOnStartup?: boolean}} [options]
 * @returns {Trigger}
 * @throws {TypeError} on an unknown option, a missing or empty schedule, or
 *   a non-boolean `runOnStartup`
 */
function timerTrigger(name, options = {}) {
  const unknown = Object.keys(options).filter((k) => !TIMER_OPTIONS.includes(k));
  if (unknown.length > 0) {
    const known = ['handler', ...TIMER_OPTIONS].join(', ');
    throw new TypeError(`unknown timer trigger option(s) of '${name}': ${unknown.join(', ')} (known: ${known})`);
  }
  const { schedule, runOnStartup = false } = options;
  if (typeof schedule !== 'string' || schedule.trim() === '') {
    throw new TypeError(`schedule of '${name}' must be a non-empty NCRONTAB expression or TimeSpan string`);
  }
  if (typeof runOnStartup !== 'boolean') {
    throw new TypeError(`runOnStartup of '${name}' must be a boolean`);
  }
  return Object.freeze({ type: 'timer', schedule, runOnStartup });
}

/**
 * The binding objects of a trigger, keys in the order Azure's workers write
 * them.
 *
 * @param {Trigger} trigger
 * @returns {Array<Record<string, unknown>>}
 */
function bindingsOf(trigger) {
  if (trigger.type === 'timer') {
    return [
      {
        type: 'timerTrigger',
        direction: 'in',
        name: 'timer',
        schedule: trigger.schedule,
        runOnStartup: trigger.runOnStartup,
      },
    ];
  }
  if (trigger.type !== 'http') return [{ type: 'manualTrigger', direction: 'in', name: 'input' }];
  const input = { type: 'httpTrigger', direction: 'in', name: 'req' };
  if (trigger.methods !== undefined) input.methods = [...trigger.methods];
  input.authLevel = trigger.authLevel;
  if (trigger.route !== undefined) input.route = trigger.route;
  return [input, { type: 'http', direction: 'out', name: '$return' }];
}

/**
 * The function's entry in a `FunctionMetadataResponse`, as Azure's workers
 * fill it: the name doubles as the stable `function_id`.
 *
 * @param {string} name
 * @param {Trigger} trigger
 * @returns {object} an `RpcFunctionMetadata`
 */
function functionMetadata(name, trigger) {
  const bindings = bindingsOf(trigger);
  return {
    name,
    function_id: name,
    language: 'node',
    is_proxy: false,
    raw_bindings: bindings.map((b) => JSON.stringify(b)),
    bindings: Object.fromEntries(bindings.map((b) => [b.name, { type: b.type, direction: b.direction }])),
    properties: { worker_indexed: 'True' },
    status: { status: 'Success' },
  };
}

module.exports = { AUTH_LEVELS, MANUAL, httpTrigger, timerTrigger, bindingsOf, functionMetadata };
