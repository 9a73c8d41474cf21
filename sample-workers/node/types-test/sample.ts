// A TypeScript function app on fnhost-worker: what a user writes, checked by
// `tsc -p types-test` (run-tests.sh). Each `@ts-expect-error` line is a
// deliberately wrong use the declarations must reject; tsc fails if one
// type-checks.

import { setTimeout as sleep } from 'node:timers/promises';
import {
  AUTH_LEVELS,
  HttpResponse,
  Input,
  InvocationContext,
  Worker,
  isAbortError,
  parseLaunchArgs,
  type AuthLevel,
  type Handler,
  type TypedData,
} from 'fnhost-worker';

const hello: Handler = async (context, input) => {
  context.info(`hello from ${context.invocationId} of ${context.functionName}`);
  console.warn('a console line: this invocation\'s Warning');
  const leftMs = context.deadline ? context.deadline.getTime() - Date.now() : Infinity;
  const attempt: number = context.attempt;
  await sleep(Math.min(leftMs, 10), undefined, { signal: context.signal });
  return new HttpResponse(200, { body: `hello ${input.text()} (attempt ${attempt})` }).header('content-type', 'text/plain');
};

function describe(data: TypedData | null): string {
  if (data === null) return 'none';
  switch (data.data) {
    case 'string':
      return data.string;
    case 'json':
      return data.json;
    case 'http':
      return `${data.http.method} ${data.http.url} ${data.http.params.id ?? ''}`;
    case 'int':
      return data.int;
    default:
      return String(data.data);
  }
}

const levels: readonly AuthLevel[] = AUTH_LEVELS;

new Worker({ workerIndexing: true })
  .http('hello', hello)
  .http('item', {
    route: 'items/{id:int}',
    methods: ['GET', 'post'],
    authLevel: levels[0],
    handler: (context, input) => new HttpResponse(200, { body: describe(input.data) }),
  })
  .timer('tick', {
    schedule: '0 * * * * *',
    handler: (context, input) => context.info(`due ${input.timer().scheduleStatus.next ?? '?'}`),
  })
  .function('job', async (context) => {
    try {
      await sleep(1000, undefined, { signal: context.signal });
    } catch (err) {
      if (isAbortError(err) || context.isCancelled) context.warn(`stopped: ${context.cancelReason ?? 'no reason'}`);
      throw err;
    }
  })
  .main();

// Unit-testing a handler.
async function testHello(): Promise<void> {
  const { context, controller, logs } = InvocationContext.forTest('i', 'hello', {
    deadline: new Date(Date.now() + 1000),
    attempt: 2,
  });
  const out = await hello(context, Input.of('world'));
  if (!(out instanceof HttpResponse) || out.body.toString() !== 'hello world (attempt 2)') throw new Error('hello');
  controller.abort('lease lost');
  const reason: string | null = context.cancelReason;
  const level: 'Trace' | 'Debug' | 'Information' | 'Warning' | 'Error' | 'Critical' = logs[0].level;
  void reason;
  void level;
}
void testHello;
void parseLaunchArgs(['--functions-uri', 'http://127.0.0.1:1/']).address.toUpperCase();

// Deliberately wrong uses.

// @ts-expect-error 'Warn' is not a log level
InvocationContext.forTest().context.log('Warn', 'x');
// @ts-expect-error deadline is a Date (or undefined), not a number
const deadlineMs: number = InvocationContext.forTest().context.deadline;
// @ts-expect-error attempt is a number
const attemptText: string = InvocationContext.forTest().context.attempt;
// @ts-expect-error a handler takes a context and an input, not a string
new Worker().function('bad', (context: string) => context);
// @ts-expect-error a timer needs a schedule
new Worker().timer('bad', { handler: () => undefined });
// @ts-expect-error authLevel is one of anonymous, function, admin
new Worker().http('bad', { handler: () => undefined, authLevel: 'public' });
// @ts-expect-error methods are HTTP methods
new Worker().http('bad', { handler: () => undefined, methods: ['FETCH'] });
// @ts-expect-error the signal is read-only
InvocationContext.forTest().context.signal = new AbortController().signal;
void deadlineMs;
void attemptText;
