'use strict';
/**
 * Launch arguments the host passes to a worker process.
 *
 * Two spellings exist and both are accepted, in any order, as `--flag value`
 * or `--flag=value`:
 *
 * - older: `--host 127.0.0.1 --port P --workerId ID --requestId ID --grpcMaxMessageLength N`
 * - newer: `--functions-uri http://127.0.0.1:P/ --functions-worker-id ID
 *   --functions-request-id ID --functions-grpc-max-message-length N`
 *
 * When both spellings of one setting are given, the newer one wins. Unknown
 * arguments are ignored.
 *
 * @module fnhost-worker/args
 */

/** Message size limit used when the host passes none (the host's default). */
const DEFAULT_GRPC_MAX_MESSAGE_LENGTH = 2147483647;

/** A launch argument is missing or malformed. */
class ArgsError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = 'ArgsError';
  }
}

/**
 * @typedef {object} LaunchArgs
 * @property {string} uri host endpoint without trailing slash, e.g. `http://127.0.0.1:7071`
 * @property {string} address `host:port` form of `uri`, as gRPC clients expect it
 * @property {string} workerId the id to announce in `StartStream`
 * @property {string} requestId stamped on every message the worker sends
 * @property {number} grpcMaxMessageLength maximum message size in bytes, both directions
 */

const KNOWN = new Set([
  'host', 'port', 'workerId', 'requestId', 'grpcMaxMessageLength',
  'functions-uri', 'functions-worker-id', 'functions-request-id',
  'functions-grpc-max-message-length',
]);

/**
 * Parses launch arguments (without `node` and the script path, i.e.
 * `process.argv.slice(2)`).
 *
 * @param {string[]} argv
 * @returns {LaunchArgs}
 * @throws {ArgsError} naming the argument when one is missing or invalid
 */
function parseLaunchArgs(argv) {
  /** @type {Record<string, string>} */
  const raw = {};
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i];
    if (!token.startsWith('--')) continue; // stray positional value
    const body = token.slice(2);
    const eq = body.indexOf('=');
    const name = eq >= 0 ? body.slice(0, eq) : body;
    if (!KNOWN.has(name)) continue;
    let value;
    if (eq >= 0) {
      value = body.slice(eq + 1);
    } else if (i + 1 < argv.length && !argv[i + 1].startsWith('--')) {
      value = argv[++i];
    } else {
      throw new ArgsError(`launch argument --${name} has no value`);
    }
    raw[name] = value;
  }

  let uri;
  if (raw['functions-uri'] !== undefined) {
    uri = parseUri(raw['functions-uri']);
  } else if (raw.host !== undefined && raw.port !== undefined) {
    const port = Number(raw.port);
    if (!/^\d+$/.test(raw.port) || port > 65535) {
      throw invalid('--port', raw.port, 'expected a port number 0-65535');
    }
    if (raw.host === '') throw invalid('--host', raw.host, 'host name is empty');
    const host = raw.host.includes(':') && !raw.host.startsWith('[') ? `[${raw.host}]` : raw.host;
    uri = `http://${host}:${port}`;
  } else if (raw.host === undefined) {
    throw new ArgsError('missing required launch argument --host/--port (or --functions-uri)');
  } else {
    throw new ArgsError('missing required launch argument --port (or --functions-uri)');
  }

  const workerId = raw['functions-worker-id'] ?? raw.workerId;
  if (workerId === undefined) {
    throw new ArgsError('missing required launch argument --workerId (or --functions-worker-id)');
  }
  const requestId = raw['functions-request-id'] ?? raw.requestId;
  if (requestId === undefined) {
    throw new ArgsError('missing required launch argument --requestId (or --functions-request-id)');
  }

  let grpcMaxMessageLength = DEFAULT_GRPC_MAX_MESSAGE_LENGTH;
  const maxFlag = raw['functions-grpc-max-message-length'] !== undefined
    ? '--functions-grpc-max-message-length'
    : raw.grpcMaxMessageLength !== undefined ? '--grpcMaxMessageLength' : null;
  if (maxFlag !== null) {
    const text = raw[maxFlag.slice(2)];
    const n = Number(text);
    if (!/^\d+$/.test(text) || !(n > 0)) {
      throw invalid(maxFlag, text, 'expected a positive number of bytes');
    }
    // gRPC takes a 32-bit signed limit.
    grpcMaxMessageLength = Math.min(n, DEFAULT_GRPC_MAX_MESSAGE_LENGTH);
  }

  return { uri, address: uri.replace(/^https?:\/\//, ''), workerId, requestId, grpcMaxMessageLength };
}

function invalid(flag, value, reason) {
  return new ArgsError(`launch argument ${flag} has invalid value ${JSON.stringify(value)}: ${reason}`);
}

function parseUri(text) {
  const trimmed = text.replace(/\/+$/, '');
  const match = /^https?:\/\/([^/]+)$/.exec(trimmed);
  if (!match) throw invalid('--functions-uri', text, 'expected http://host:port/');
  return trimmed;
}

module.exports = { parseLaunchArgs, ArgsError, DEFAULT_GRPC_MAX_MESSAGE_LENGTH };
