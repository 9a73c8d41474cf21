'use strict';
/**
 * The network side: connect to the host, open `FunctionRpc/EventStream`,
 * announce the worker with `StartStream`, and move messages between the
 * stream and the {@link Dispatcher} until the host ends the stream, sends
 * `WorkerTerminate`, or the process receives SIGTERM.
 *
 * @module fnhost-worker/runtime
 */

const grpc = require('@grpc/grpc-js');
const { installConsoleBridge } = require('./console');
const { Dispatcher, DEFAULT_GRACE_MS } = require('./dispatcher');
const { loadRpcPackage } = require('./proto');

/** How long to keep trying to reach the host, in ms. */
const CONNECT_FOR_MS = 5000;
/** The environment variable the host puts the launch secret in. */
const LAUNCH_SECRET_ENV = 'FNHOST_WORKER_SECRET';
/** The metadata key the host reads it from. */
const LAUNCH_SECRET_METADATA = 'x-fnhost-worker-secret';
/** How long to wait for the host to close its side after ours is closed, in ms. */
const CLOSE_WAIT_MS = 1000;

/** The host could not be reached. */
class ConnectError extends Error {
  /** @param {string} message @param {Error} [cause] */
  constructor(message, cause) {
    super(message, { cause });
    this.name = 'ConnectError';
  }
}

function debug(message) {
  if (process.env.FNHOST_NODE_WORKER_DEBUG) process.stderr.write(`fnhost-worker: ${message}\n`);
}

function delay(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

/**
 * Runs the worker protocol until the stream ends. Meanwhile the console
 * bridge is installed on the global `console`: console calls in a handler
 * become its invocation's log lines.
 *
 * @param {Map<string, import('./dispatcher').Handler>} functions
 * @param {import('./args').LaunchArgs} args
 * @param {object} [options]
 * @param {Map<string, import('./triggers').Trigger>} [options.triggers]
 * @param {boolean} [options.workerIndexing=false]
 * @returns {Promise<void>} resolves after an orderly stop (terminate, SIGTERM,
 *   or the host closing the stream)
 * @throws {ConnectError} when the host cannot be reached
 */
async function run(functions, args, { triggers, workerIndexing = false } = {}) {
  const { FunctionRpc } = loadRpcPackage();
  const client = new FunctionRpc(args.address, grpc.credentials.createInsecure(), {
    'grpc.max_receive_message_length': args.grpcMaxMessageLength,
    'grpc.max_send_message_length': args.grpcMaxMessageLength,
  });
  await new Promise((resolve, reject) => {
    client.waitForReady(Date.now() + CONNECT_FOR_MS, (err) =>
      err ? reject(new ConnectError(`cannot reach the host at ${args.uri}: ${err.message}`, err)) : resolve(),
    );
  });

  const metadata = new grpc.Metadata();
  // The host's per-launch secret (environment only, never argv) proves this
  // process is the one it launched.
  const secret = process.env[LAUNCH_SECRET_ENV];
  if (secret) metadata.set(LAUNCH_SECRET_METADATA, secret);
  const call = client.EventStream(metadata);
  let writable = true;
  /** Sends one message, stamped with the launch request id. */
  const send = (msg) => {
    if (writable) call.write({ ...msg, request_id: args.requestId });
  };
  const streamDone = new Promise((resolve) => {
    call.on('status', resolve);
    call.on('error', (err) => {
      debug(`event stream failed: ${err.message}`);
      resolve();
    });
  });

  send({ start_stream: { worker_id: args.workerId } });
  debug(`event stream open to ${args.uri} as ${args.workerId}`);
  const dispatcher = new Dispatcher({ functions, send, triggers, workerIndexing });

  let stopping = null;
  /** Cancels everything, sends results as they arrive up to `graceMs`, then closes our side. */
  const drain = (graceMs, why) => {
    if (stopping) return stopping;
    debug(`${why}; draining ${dispatcher.inFlight} invocation(s) for up to ${graceMs} ms`);
    dispatcher.cancelAll();
    stopping = (async () => {
      await Promise.race([dispatcher.idle(), delay(graceMs)]);
      if (dispatcher.inFlight > 0) {
        process.stderr.write(
          `fnhost-worker: grace period ended with ${dispatcher.inFlight} invocation(s) still running\n`,
        );
      }
      writable = false;
      call.end();
      await Promise.race([streamDone, delay(CLOSE_WAIT_MS)]);
    })();
    return stopping;
  };

  let onSigterm = null;
  const restoreConsole = installConsoleBridge(console);
  try {
    await new Promise((resolve) => {
      onSigterm = () => drain(DEFAULT_GRACE_MS, 'SIGTERM').then(resolve);
      process.once('SIGTERM', onSigterm);
      call.on('data', (msg) => {
        const step = dispatcher.handleMessage(msg);
        if (step) drain(step.terminateGraceMs, 'worker terminate requested').then(resolve);
      });
      const lost = (why) => {
        // Nobody can receive results any more: stop everything now.
        debug(why);
        writable = false;
        dispatcher.cancelAll();
        if (stopping) stopping.then(resolve);
        else resolve();
      };
      call.on('end', () => lost('the host ended the event stream'));
      call.on('error', (err) => lost(`event stream failed: ${err.message}`));
    });
  } finally {
    restoreConsole();
    process.removeListener('SIGTERM', onSigterm);
    client.close();
  }
}

module.exports = { run, ConnectError, CONNECT_FOR_MS };
