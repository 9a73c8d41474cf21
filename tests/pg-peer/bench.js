#!/usr/bin/env node
// A peer for fnhost's PostgreSQL event store: graphile-worker's rates on the
// same server, with its default settings.
//
//   node bench.js [CONNECTION_STRING] [--jobs N] [--callers N] [--concurrency N]
//
// The connection string comes from argv or PG_PEER_URL. (a) N jobs are added
// with addJob by `callers` concurrent callers (one pool connection each);
// (b) a runner with a no-op task and `concurrency` workers completes them.
// Prints one JSON line: {"adds_per_s":..,"completions_per_s":..,"jobs":..}.
// It uses the graphile_worker schema of the database it is given and leaves
// it empty of jobs; give it a database of its own.
//
// graphile-worker 0.18.0 declares node >=22.18; it loads and runs on the
// Node 20 these machines have (npm only warns, and setup.sh hides warnings).
"use strict";

const { Logger, makeWorkerUtils, run } = require("graphile-worker");

function parseArgs(argv) {
  const opts = { url: process.env.PG_PEER_URL, jobs: 20000, callers: 64, concurrency: 16 };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i].replace(/^--/, "");
    if (flag in opts && flag !== "url") {
      const n = Number(argv[++i]);
      if (!Number.isInteger(n) || n < 1) throw new Error(`--${flag} wants a positive integer`);
      opts[flag] = n;
    } else if (!argv[i].startsWith("--")) {
      opts.url = argv[i];
    } else {
      throw new Error(`unknown option ${argv[i]}`);
    }
  }
  if (!opts.url) throw new Error("give a connection string (argv or PG_PEER_URL)");
  return opts;
}

// graphile-worker logs every completed job at info; keep only warnings and
// errors, on stderr, so stdout is the one JSON line.
const logger = new Logger(() => (level, message) => {
  if (level === "error" || level === "warning") console.error(`[graphile-worker ${level}] ${message}`);
});

async function addJobs(url, { jobs, callers }) {
  const utils = await makeWorkerUtils({ connectionString: url, maxPoolSize: callers, logger });
  try {
    await utils.migrate();
    let next = 0;
    const start = process.hrtime.bigint();
    await Promise.all(
      Array.from({ length: callers }, async () => {
        while (next < jobs) {
          const i = next++;
          await utils.addJob("noop", { i });
        }
      }),
    );
    return seconds(start);
  } finally {
    await utils.release();
  }
}

async function completeJobs(url, { jobs, concurrency }) {
  let done = 0;
  let allDone;
  const finished = new Promise((resolve) => (allDone = resolve));
  const start = process.hrtime.bigint();
  const runner = await run({
    connectionString: url,
    concurrency,
    // One connection per worker plus the listener's and the pool's own.
    maxPoolSize: concurrency + 2,
    noHandleSignals: true,
    logger,
    taskList: { noop: async () => {} },
  });
  runner.events.on("job:success", () => {
    if (++done === jobs) allDone();
  });
  await finished;
  const elapsed = seconds(start);
  await runner.stop();
  return elapsed;
}

function seconds(start) {
  return Number(process.hrtime.bigint() - start) / 1e9;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const addSecs = await addJobs(opts.url, opts);
  const completeSecs = await completeJobs(opts.url, opts);
  console.log(
    JSON.stringify({
      adds_per_s: Math.round(opts.jobs / addSecs),
      completions_per_s: Math.round(opts.jobs / completeSecs),
      jobs: opts.jobs,
      callers: opts.callers,
      concurrency: opts.concurrency,
    }),
  );
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
