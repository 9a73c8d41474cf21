'use strict';
/**
 * A handler's input ({@link Input}, with helpers for HTTP and timer
 * triggers), its return value's conversion to `TypedData`, and
 * {@link HttpResponse} for HTTP-triggered functions.
 *
 * @module fnhost-worker/io
 */

/**
 * The bytes of a decoded `TypedData` where it has a natural byte form
 * (string, json, bytes, stream, numbers as text, HTTP body); `null` for
 * collections and empty data.
 *
 * @param {object|null|undefined} data decoded `TypedData`
 * @returns {Buffer|null}
 */
function typedDataBytes(data) {
  if (!data || !data.data) return null;
  switch (data.data) {
    case 'string':
    case 'json':
      return Buffer.from(data[data.data], 'utf8');
    case 'bytes':
    case 'stream':
      return Buffer.from(data[data.data]);
    case 'int':
    case 'double':
      return Buffer.from(String(data[data.data]), 'utf8');
    case 'http':
      return typedDataBytes(data.http.body) ?? Buffer.alloc(0);
    default:
      return null;
  }
}

/**
 * What a handler receives: the trigger payload plus every named input
 * binding and the trigger metadata.
 */
class Input {
  /**
   * @param {object|null} trigger decoded `TypedData` of the first input binding
   * @param {Map<string, object>} [bindings] binding name → decoded `TypedData`
   * @param {Record<string, object>} [metadata] trigger metadata
   */
  constructor(trigger, bindings = new Map(), metadata = {}) {
    this._trigger = trigger ?? null;
    this._bindings = bindings;
    this._metadata = metadata;
  }

  /**
   * An input from the bindings of a decoded `InvocationRequest`.
   *
   * @param {object} req decoded `InvocationRequest`
   * @returns {Input}
   */
  static fromRequest(req) {
    const bindings = new Map();
    let trigger = null;
    for (const binding of req.input_data || []) {
      if (binding.rpc_data !== 'data' || !binding.data) continue; // shared memory: unsupported
      bindings.set(binding.name, binding.data);
      if (trigger === null) trigger = binding.data;
    }
    return new Input(trigger, bindings, req.trigger_metadata || {});
  }

  /**
   * An input holding a plain payload, for tests: a string, a Buffer, or a
   * decoded `TypedData` object.
   *
   * @param {string|Buffer|object} value
   * @returns {Input}
   */
  static of(value) {
    if (typeof value === 'string') return new Input({ data: 'string', string: value });
    if (Buffer.isBuffer(value)) return new Input({ data: 'bytes', bytes: value });
    return new Input(value);
  }

  /** The trigger's decoded `TypedData`, or `null` when there is no input. */
  get data() {
    return this._trigger;
  }

  /**
   * The trigger's `RpcHttp` (method, url, headers, query, body, ...) when the
   * function has an HTTP trigger, else `null`.
   */
  get http() {
    return this._trigger && this._trigger.data === 'http' ? this._trigger.http : null;
  }

  /**
   * The payload as bytes (for HTTP: the body); empty when there is none.
   *
   * @returns {Buffer}
   */
  bytes() {
    return typedDataBytes(this._trigger) ?? Buffer.alloc(0);
  }

  /**
   * The payload as UTF-8 text.
   *
   * @returns {string}
   */
  text() {
    return this.bytes().toString('utf8');
  }

  /**
   * The payload parsed as JSON.
   *
   * @returns {*}
   * @throws {Error} when the payload is not JSON
   */
  json() {
    try {
      return JSON.parse(this.text());
    } catch (e) {
      throw new Error(`input is not the expected JSON: ${e.message}`);
    }
  }

  /**
   * The payload as a timer trigger's `TimerInfo`, in the shape of Azure's
   * v4 `Timer`: `{ isPastDue, schedule: { adjustForDST }, scheduleStatus:
   * { last, next, lastUpdated } }`, the times being the host's RFC 3339
   * strings (`next`: the time this tick was scheduled for). Fields the JSON
   * lacks are `null` (`isPastDue`: `false`).
   *
   * @returns {{isPastDue: boolean, schedule: {adjustForDST: boolean|null},
   *   scheduleStatus: {last: string|null, next: string|null, lastUpdated: string|null}}}
   * @throws {Error} when the payload is not a JSON object
   */
  timer() {
    const info = this.json();
    if (!isObject(info)) throw new Error('input is not a TimerInfo JSON object');
    const status = isObject(info.ScheduleStatus) ? info.ScheduleStatus : {};
    const schedule = isObject(info.Schedule) ? info.Schedule : {};
    const text = (v) => (typeof v === 'string' ? v : null);
    return {
      isPastDue: info.IsPastDue === true,
      schedule: { adjustForDST: typeof schedule.AdjustForDST === 'boolean' ? schedule.AdjustForDST : null },
      scheduleStatus: { last: text(status.Last), next: text(status.Next), lastUpdated: text(status.LastUpdated) },
    };
  }

  /**
   * A named input binding's decoded `TypedData`, or `undefined`.
   *
   * @param {string} name
   * @returns {object|undefined}
   */
  binding(name) {
    return this._bindings.get(name);
  }

  /**
   * A trigger metadata entry's decoded `TypedData`, or `undefined`.
   *
   * @param {string} key
   * @returns {object|undefined}
   */
  triggerMetadata(key) {
    return this._metadata[key];
  }
}

/** An HTTP response for a function whose output binding is `http`. */
class HttpResponse {
  /**
   * @param {number} [status=200]
   * @param {{headers?: Record<string, string>, body?: string|Buffer|Uint8Array}} [init]
   */
  constructor(status = 200, init = {}) {
    /** @type {number} */
    this.status = status;
    /** @type {Record<string, string>} */
    this.headers = { ...(init.headers || {}) };
    /** @type {Buffer} */
    this.body = toBuffer(init.body ?? Buffer.alloc(0));
  }

  /**
   * Sets a header; returns `this` for chaining.
   *
   * @param {string} name
   * @param {string} value
   * @returns {HttpResponse}
   */
  header(name, value) {
    this.headers[name] = String(value);
    return this;
  }

  /**
   * Sets the body; returns `this` for chaining.
   *
   * @param {string|Buffer|Uint8Array} body
   * @returns {HttpResponse}
   */
  setBody(body) {
    this.body = toBuffer(body);
    return this;
  }
}

function isObject(value) {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function toBuffer(body) {
  if (typeof body === 'string') return Buffer.from(body, 'utf8');
  return Buffer.from(body);
}

/**
 * Converts a handler's return value to the `TypedData` to send, or `null`
 * for none: `undefined`/`null` → none, {@link HttpResponse} → `http`, string
 * → `string`, Buffer/Uint8Array → `bytes`, anything else → `json`.
 *
 * @param {*} value
 * @returns {object|null} a `TypedData` object for the encoder
 */
function toTypedData(value) {
  if (value === undefined || value === null) return null;
  if (value instanceof HttpResponse) {
    return {
      http: {
        status_code: String(value.status),
        headers: value.headers,
        body: { bytes: value.body },
      },
    };
  }
  if (typeof value === 'string') return { string: value };
  if (Buffer.isBuffer(value) || value instanceof Uint8Array) return { bytes: Buffer.from(value) };
  return { json: JSON.stringify(value) };
}

module.exports = { Input, HttpResponse, toTypedData, typedDataBytes };
