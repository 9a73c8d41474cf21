'use strict';
/** Unit tests of launch-argument parsing (both spellings). */

const test = require('node:test');
const assert = require('node:assert/strict');
const { parseLaunchArgs, ArgsError } = require('../lib');

test('older style', () => {
  const a = parseLaunchArgs([
    '--host', '127.0.0.1', '--port', '5123', '--workerId', 'w-1', '--requestId', 'r-1',
    '--grpcMaxMessageLength', '1048576',
  ]);
  assert.deepEqual(a, {
    uri: 'http://127.0.0.1:5123',
    address: '127.0.0.1:5123',
    workerId: 'w-1',
    requestId: 'r-1',
    grpcMaxMessageLength: 1048576,
  });
});

test('newer style, with unknown arguments and --flag=value', () => {
  const a = parseLaunchArgs([
    'index.js', '--functions-uri', 'http://127.0.0.1:5123/', '--verbose', '--functions-worker-id=w-2',
    '--functions-request-id', 'r-2', '--functions-grpc-max-message-length', '2048', '--other', 'x',
  ]);
  assert.equal(a.uri, 'http://127.0.0.1:5123');
  assert.equal(a.address, '127.0.0.1:5123');
  assert.equal(a.workerId, 'w-2');
  assert.equal(a.requestId, 'r-2');
  assert.equal(a.grpcMaxMessageLength, 2048);
});

test('both styles together: the newer one wins', () => {
  const a = parseLaunchArgs([
    '--host', '127.0.0.1', '--port', '1', '--workerId', 'old', '--requestId', 'old-r',
    '--functions-uri', 'http://127.0.0.1:2/', '--functions-worker-id', 'new', '--functions-request-id', 'new-r',
  ]);
  assert.deepEqual([a.uri, a.workerId, a.requestId], ['http://127.0.0.1:2', 'new', 'new-r']);
  assert.equal(a.grpcMaxMessageLength, 2147483647);
});

test('errors name the argument', () => {
  assert.throws(() => parseLaunchArgs(['--host', 'h', '--port', '1', '--requestId', 'r']), /--workerId/);
  assert.throws(() => parseLaunchArgs(['--workerId', 'w', '--requestId', 'r']), /--host/);
  assert.throws(() => parseLaunchArgs(['--host', 'h', '--port', 'x', '--workerId', 'w']), /--port/);
  assert.throws(() => parseLaunchArgs(['--functions-uri', '--functions-worker-id', 'w']), /--functions-uri has no value/);
  assert.throws(
    () => parseLaunchArgs(['--functions-uri=ftp://x', '--functions-worker-id=w', '--functions-request-id=r']),
    ArgsError,
  );
  assert.throws(
    () => parseLaunchArgs(['--functions-uri=http://h:1', '--workerId=w', '--requestId=r', '--grpcMaxMessageLength=-5']),
    /--grpcMaxMessageLength/,
  );
});
