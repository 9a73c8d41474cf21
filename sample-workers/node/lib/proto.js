'use strict';
/**
 * Loads the FunctionRpc protocol definition from the package's own
 * `protos/`: a copy of the repository's `proto/protos/`, made by `setup.sh`
 * in the source tree and by `prepack` for the published package (the unit
 * tests check it matches), so the worker speaks exactly the wire contract the
 * host was built from and an installed package reads nothing outside itself.
 *
 * Decoding conventions used throughout the SDK (proto-loader options):
 * field names keep their proto spelling (`worker_id`), 64-bit integers are
 * decimal strings, enums are their value *names* (`'Cancelled'`), unset
 * fields carry their defaults, and every oneof has a virtual field naming the
 * member that is set (`msg.content === 'invocation_request'`).
 *
 * @module fnhost-worker/proto
 */

const fs = require('node:fs');
const path = require('node:path');
const protoLoader = require('@grpc/proto-loader');
const grpc = require('@grpc/grpc-js');

/** Folder holding `FunctionRpc.proto` and its imports, inside the package. */
const PROTO_DIR = path.join(__dirname, '../protos');

/** proto-loader options; see the module comment. */
const LOADER_OPTIONS = Object.freeze({
  includeDirs: [PROTO_DIR],
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
});

let cached = null;

/**
 * The loaded `AzureFunctionsRpcMessages` gRPC package (loaded once).
 *
 * @returns {object} the package object; `.FunctionRpc` is the client class.
 * @throws {Error} when the package's `protos/` is missing
 */
function loadRpcPackage() {
  if (cached === null) {
    if (!fs.existsSync(path.join(PROTO_DIR, 'FunctionRpc.proto'))) {
      throw new Error(
        `${PROTO_DIR} has no FunctionRpc.proto: in the fnhost repository, run sample-workers/node/setup.sh to copy proto/protos there`,
      );
    }
    const definition = protoLoader.loadSync('FunctionRpc.proto', LOADER_OPTIONS);
    cached = grpc.loadPackageDefinition(definition).AzureFunctionsRpcMessages;
  }
  return cached;
}

/**
 * Milliseconds in a decoded `google.protobuf.Duration`, or `fallbackMs` when
 * the duration is absent.
 *
 * @param {{seconds?: string|number, nanos?: number}|null|undefined} duration
 * @param {number} fallbackMs
 * @returns {number}
 */
function durationToMs(duration, fallbackMs) {
  if (!duration) return fallbackMs;
  const seconds = Number(duration.seconds || 0);
  const nanos = Number(duration.nanos || 0);
  return Math.max(0, seconds * 1000 + Math.floor(nanos / 1e6));
}

module.exports = { PROTO_DIR, LOADER_OPTIONS, loadRpcPackage, durationToMs };
