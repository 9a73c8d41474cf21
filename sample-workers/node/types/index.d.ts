// Type declarations of fnhost-worker, written by hand for lib/index.js.
// types-test/ (run by run-tests.sh) type-checks a sample against them, and a
// unit test checks they name every value lib/index.js exports.

/// <reference types="node" />

/** `RpcLog.Level` names, lowest first. */
export type LogLevel = 'Trace' | 'Debug' | 'Information' | 'Warning' | 'Error' | 'Critical';

/** Who may call an HTTP-triggered function. */
export type AuthLevel = 'anonymous' | 'function' | 'admin';

/** The values of {@link AuthLevel}. */
export declare const AUTH_LEVELS: readonly AuthLevel[];

/** HTTP methods an HTTP trigger can be limited to (either case). */
export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE' | 'HEAD' | 'OPTIONS' | 'TRACE' | 'CONNECT';

/**
 * Why the host cancelled an invocation; other hosts may send other strings.
 * `'lease lost'`: another host took the event over, so this run is a duplicate.
 */
export type CancelReason = 'timeout' | 'host shutdown' | 'client disconnect' | 'terminate' | 'lease lost';

/**
 * The distributed trace an invocation runs in, shaped like `@azure/functions`
 * v4's `TraceContext`.
 */
export interface TraceContext {
  /** W3C `traceparent` of the invocation's span. */
  traceParent: string;
  /** The caller's `tracestate` (`''` when none). */
  traceState: string;
  /** Extra properties; fnhost sends `OperationName` (the function name). */
  attributes: Record<string, string>;
}

/** A decoded `RpcHttp` (field names as in the proto; every field present). */
export interface RpcHttp {
  method: string;
  url: string;
  headers: Record<string, string>;
  body: TypedData | null;
  /** Route values, e.g. `{ id: '7' }` for `items/{id:int}`. */
  params: Record<string, string>;
  query: Record<string, string>;
  status_code: string;
  [field: string]: unknown;
}

/**
 * A decoded `TypedData`: `data` names the member that is set (absent when
 * none is). `int` is a decimal string (64 bits).
 */
export type TypedData =
  | { data: 'string'; string: string }
  | { data: 'json'; json: string }
  | { data: 'bytes'; bytes: Buffer }
  | { data: 'stream'; stream: Buffer }
  | { data: 'http'; http: RpcHttp }
  | { data: 'int'; int: string }
  | { data: 'double'; double: number }
  | {
      data:
        | 'collection_bytes'
        | 'collection_string'
        | 'collection_double'
        | 'collection_sint64'
        | 'model_binding_data'
        | 'collection_model_binding_data';
      [field: string]: unknown;
    }
  | { data?: undefined };

/** A `TypedData` for {@link Input.of}: an HTTP request may leave fields out. */
export type TypedDataInit = Exclude<TypedData, { data: 'http' }> | { data: 'http'; http: Partial<RpcHttp> };

/** An `RpcLog` line as the SDK sends it (and {@link InvocationContext.forTest} collects it). */
export interface RpcLog {
  invocation_id: string;
  /** The function's name. */
  category: string;
  level: LogLevel;
  message: string;
  log_category: 'User';
}

/** A timer trigger's input, shaped like `@azure/functions` v4's `Timer`. */
export interface TimerInfo {
  isPastDue: boolean;
  schedule: { adjustForDST: boolean | null };
  /** RFC 3339 times; `next` is the time this tick was scheduled for. */
  scheduleStatus: { last: string | null; next: string | null; lastUpdated: string | null };
}

/**
 * A function handler. Its return value (or what its promise resolves to) is
 * the output: `undefined`/`null` none, an {@link HttpResponse} the HTTP
 * response, a string `string`, a Buffer/Uint8Array `bytes`, anything else
 * JSON. Throwing or rejecting fails the invocation; rejecting with an
 * `AbortError` (or anything once `context.signal` is aborted) answers it
 * `Cancelled`.
 */
export type Handler = (context: InvocationContext, input: Input) => unknown;

/** What {@link InvocationContext.forTest} may set. */
export interface ForTestOptions {
  traceContext?: TraceContext;
  deadline?: Date;
  attempt?: number;
}

/** What a handler knows about the invocation it runs. */
export declare class InvocationContext {
  /** Created by the worker for each invocation; use {@link InvocationContext.forTest} in unit tests. */
  constructor(init: {
    invocationId: string;
    functionName: string;
    signal: AbortSignal;
    emitLog?: (log: RpcLog) => void;
    traceContext?: TraceContext;
    deadlineMs?: number;
    attempt?: number;
  });

  /**
   * A context for unit-testing a handler: abort `controller` to simulate a
   * cancel (`controller.abort('lease lost')` for one with a reason); log
   * lines are collected in `logs`.
   */
  static forTest(
    invocationId?: string,
    functionName?: string,
    options?: ForTestOptions,
  ): { context: InvocationContext; controller: AbortController; logs: RpcLog[] };

  /** The host's id of this invocation. */
  readonly invocationId: string;
  /** The name of the function being invoked. */
  readonly functionName: string;
  /** The trace it runs in; `undefined` when the host sent none. */
  readonly traceContext: TraceContext | undefined;
  /**
   * When the host's function timeout fires (a cancel with reason `'timeout'`
   * follows); `undefined` from a host that sends none.
   */
  readonly deadline: Date | undefined;
  /** 1 for the first run of an async event and every synchronous invocation, 2 for the first retry, ... */
  readonly attempt: number;
  /**
   * Aborted when the host cancels the invocation or the worker shuts down;
   * `signal.reason` is the host's reason string when it gave one, else an
   * `AbortError`.
   */
  readonly signal: AbortSignal;
  /** True once the invocation was cancelled. */
  readonly isCancelled: boolean;
  /** Why the host cancelled, once it did and said; the first reason stands. */
  readonly cancelReason: CancelReason | (string & {}) | null;

  /** Sends a log line for this invocation to the host. */
  log(level: LogLevel, message: string): void;
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

/** A handler's input: the trigger payload, the named input bindings and the trigger metadata. */
export declare class Input {
  constructor(trigger: TypedData | null, bindings?: Map<string, TypedData>, metadata?: Record<string, TypedData>);
  /** An input from a decoded `InvocationRequest`. */
  static fromRequest(request: object): Input;
  /** An input holding a plain payload, for tests. */
  static of(value: string | Buffer | TypedDataInit): Input;
  /** The trigger's `TypedData`, or `null` when there is no input. */
  readonly data: TypedData | null;
  /** The trigger's `RpcHttp` for an HTTP trigger, else `null`. */
  readonly http: RpcHttp | null;
  /** The payload as bytes (HTTP: the body); empty when none. */
  bytes(): Buffer;
  /** The payload as UTF-8 text. */
  text(): string;
  /** The payload parsed as JSON; throws when it is not JSON. */
  json(): unknown;
  /** The payload as a timer trigger's `TimerInfo`; throws when it is not one. */
  timer(): TimerInfo;
  /** A named input binding's `TypedData`. */
  binding(name: string): TypedData | undefined;
  /** A trigger metadata entry's `TypedData`. */
  triggerMetadata(key: string): TypedData | undefined;
}

/** An HTTP response for a function whose output binding is `http`. */
export declare class HttpResponse {
  constructor(status?: number, init?: { headers?: Record<string, string>; body?: string | Buffer | Uint8Array });
  status: number;
  headers: Record<string, string>;
  body: Buffer;
  /** Sets a header; returns `this`. */
  header(name: string, value: string): this;
  /** Sets the body; returns `this`. */
  setBody(body: string | Buffer | Uint8Array): this;
}

/** Options of {@link Worker.http} besides the bare-handler form. */
export interface HttpOptions {
  handler: Handler;
  /** Route template, e.g. `items/{id:int}` (default: the function's name). */
  route?: string;
  /** Default: every method. */
  methods?: Array<HttpMethod | Lowercase<HttpMethod>>;
  /** Default `'function'`. */
  authLevel?: AuthLevel;
}

/** Options of {@link Worker.timer}. */
export interface TimerOptions {
  handler: Handler;
  /** NCRONTAB with seconds first (`'0 * * * * *'`) or a TimeSpan (`'00:05:00'`). */
  schedule: string;
  /** Also run when the host starts; default `false`. */
  runOnStartup?: boolean;
}

/** How a registered function is triggered. */
export type Trigger =
  | { readonly type: 'manual' }
  | {
      readonly type: 'http';
      readonly route: string | undefined;
      readonly methods: readonly string[] | undefined;
      readonly authLevel: AuthLevel;
    }
  | { readonly type: 'timer'; readonly schedule: string; readonly runOnStartup: boolean };

/** Options of {@link Worker}. */
export interface WorkerOptions {
  /** The worker reports its functions and triggers itself; no `function.json` needed. Default `false`. */
  workerIndexing?: boolean;
}

/** A worker: named function handlers and the loop that serves them. */
export declare class Worker {
  constructor(options?: WorkerOptions);
  /** Registers a function whose `function.json` decides its trigger (a `manualTrigger` with worker indexing). */
  function(name: string, handler: Handler): this;
  /** Registers an HTTP-triggered function. */
  http(name: string, options: Handler | HttpOptions): this;
  /** Registers a timer-triggered function. */
  timer(name: string, options: TimerOptions): this;
  /** Registered handlers by function name (a copy). */
  readonly functions: Map<string, Handler>;
  /** Registered triggers by function name (a copy). */
  readonly triggers: Map<string, Trigger>;
  readonly workerIndexing: boolean;
  /** Connects to the host and serves until it terminates the worker, ends the stream, or SIGTERM. */
  run(argv?: readonly string[]): Promise<void>;
  /** {@link Worker.run}, then exits: 0 after an orderly stop, 2 for bad launch arguments, 1 otherwise. */
  main(argv?: readonly string[]): void;
}

/** The host's launch arguments, parsed. */
export interface LaunchArgs {
  /** e.g. `http://127.0.0.1:7071` */
  uri: string;
  /** `host:port` */
  address: string;
  workerId: string;
  requestId: string;
  grpcMaxMessageLength: number;
}

/** Parses the host's launch arguments (both spellings), e.g. `process.argv.slice(2)`. */
export declare function parseLaunchArgs(argv: readonly string[]): LaunchArgs;

/** A launch argument is missing or malformed. */
export declare class ArgsError extends Error {
  constructor(message: string);
}

/** The host could not be reached. */
export declare class ConnectError extends Error {
  constructor(message: string, cause?: Error);
}

/** True for an error named `AbortError` (directly or as its `cause`). */
export declare function isAbortError(err: unknown): boolean;

/** A handler's return value as the `TypedData` the SDK sends, or `null` for none. */
export declare function toTypedData(value: unknown): Record<string, unknown> | null;

/** The most recent ids, evicting the oldest beyond `capacity`. */
export declare class BoundedSet {
  constructor(capacity: number);
  readonly capacity: number;
  readonly size: number;
  add(id: string): void;
  /** Removes `id`; returns whether it was present. */
  take(id: string): boolean;
  has(id: string): boolean;
}

/** The worker's protocol state without the network (what the runtime drives; for tests). */
export declare class Dispatcher {
  constructor(options: {
    functions: Map<string, Handler>;
    /** Receives each outgoing `StreamingMessage` (without `request_id`). */
    send: (message: object) => void;
    rememberedIds?: number;
    triggers?: Map<string, Trigger>;
    workerIndexing?: boolean;
  });
  /** Invocations whose result has not been sent. */
  readonly inFlight: number;
  readonly earlyCancelCount: number;
  /** Aborts every in-flight invocation; later requests are answered `Cancelled`. */
  cancelAll(): void;
  /** Resolves once no invocation is in flight. */
  idle(): Promise<void>;
  /** Handles one decoded host message; non-null when the host asked the worker to terminate. */
  handleMessage(message: object): { terminateGraceMs: number } | null;
}
