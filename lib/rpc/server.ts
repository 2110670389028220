/**
 * Generic gRPC server: serves any protobuf-es v2 service over @grpc/grpc-js from its descriptor.
 *
 * Every call goes through one wrapper that (1) turns a body that does not decode into
 * INVALID_ARGUMENT, (2) builds the CallContext (metadata, deadline, AbortSignal), (3) runs the
 * middleware chain around the handler, (4) encodes responses itself so a response that cannot be
 * encoded is a logged INTERNAL error, and (5) maps thrown errors to status codes (status.ts).
 * Health and reflection (both versions) are installed by default.
 */
import { create, type DescMethod, type DescService, type Message } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import type { Buffer } from "node:buffer";
import type { EventEmitter } from "node:events";
import type { Http2Session } from "node:http2";
import { UnavailableError } from "../errors.ts";
import { endStream, readRequests, requestOf, ServerCall, writeAll } from "./server_call.ts";
import { isSessionMethod, serveSession, type UnaryHandler } from "./session.ts";
import { healthImpl, HealthReporter } from "./health.ts";
import { type DecodeFailure, decodeMessageSafely, encodeMessage, wireMethod } from "./methods.ts";
import { addReflection } from "./reflection.ts";
import { type CallStatus, Code, statusFromError } from "./status.ts";
import type { CallInfo, CallMiddleware, GenService, GenServiceMethods, ServiceImpl } from "./types.ts";
import { Health } from "../../gen/grpc/health/v1/health_pb.ts";
import { installHttp2Guard } from "./h2_guard.ts";
import { truncateEchoes } from "../echo.ts";
import { hops } from "./hop_trace.ts";

installHttp2Guard(); // before any session exists (denoland/deno#36788, see h2_guard.ts)

/**
 * Default message size limit both ways. grpc-js' own default (4 MiB receive) is too small for
 * SD1.5 traffic (INFRA.md, "gRPC on Deno"); services set theirs from --max-message-bytes.
 */
export const DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

/**
 * Trailer on every successful unary response: milliseconds the handler spent (response encoding
 * included, request decoding not), so a client can split its wall time into compute and wire.
 */
export const SERVER_TIME_TRAILER = "rdpo-server-ms";

/**
 * Trailer beside SERVER_TIME_TRAILER on unary responses: milliseconds from the start of request
 * decoding to the handler's start (protobuf decode, grpc-js dispatch, the call middleware's entry),
 * part of what a client counts as wire time (issue 21: the wire-time breakdown).
 */
export const SERVER_PRE_TIME_TRAILER = "rdpo-server-pre-ms";

/** When each decoded unary request began decoding (performance.now()), for SERVER_PRE_TIME_TRAILER. */
const decodeStartedAt = new WeakMap<object, number>();

export interface ServerOptions {
  /** Largest request accepted (bigger ones: RESOURCE_EXHAUSTED). */
  maxReceiveMessageBytes?: number;
  /** Largest response sent (bigger ones: RESOURCE_EXHAUSTED). */
  maxSendMessageBytes?: number;
  /** Middleware around every call, outermost first (OpenTelemetry goes here). */
  onCall?: CallMiddleware[];
  /** Serve grpc.health.v1.Health (default true). */
  health?: boolean;
  /** Serve grpc.reflection v1 and v1alpha (default true). */
  reflection?: boolean;
  /** Where server bugs (INTERNAL) are reported; default console.error. */
  log?: (message: string, error?: unknown) => void;
  /**
   * HTTP/2 flow-control window per connection and stream, also raising the frame size (default
   * DEFAULT_FLOW_CONTROL_WINDOW); 0 keeps HTTP/2's defaults (64 KiB window, 16 KiB frames).
   */
  flowControlWindowBytes?: number;
  /** Extra grpc-js server options (keepalive etc.). */
  grpcOptions?: grpc.ServerOptions;
}

export interface BoundAddress {
  host: string;
  port: number;
  /** "host:port", brackets around IPv6 hosts. */
  address: string;
}

export interface ShutdownResult {
  /** True if every in-flight call finished within the grace period. */
  drained: boolean;
  /** Calls still running when the grace period ended (they were cancelled). */
  abandoned: number;
}

/**
 * HTTP/2's default 64 KiB window makes a 1.5 MiB request wait for a dozen WINDOW_UPDATE round
 * trips, and its 16 KiB frames mean ~100 frames through Deno's http2 layer. Measured here (two
 * 512x512 images, loopback, A/B in one process): a 16 MiB window and 16 MiB frames cut the round
 * trip by about a third (bench/wire_bench.ts).
 */
export const DEFAULT_FLOW_CONTROL_WINDOW = 16 * 1024 * 1024;
const MAX_FRAME_SIZE = 2 ** 24 - 1; // the largest HTTP/2 allows

export function formatAddress(host: string, port: number): string {
  return host.includes(":") && !host.startsWith("[") ? `[${host}]:${port}` : `${host}:${port}`;
}

/** A grpc-js server plus the registry of served descriptors (for reflection) and health. */
export class RpcServer {
  readonly grpc: grpc.Server;
  readonly health: HealthReporter;
  /** Middleware list; may be appended to before the first call. */
  readonly onCall: CallMiddleware[];
  readonly #log: (message: string, error?: unknown) => void;
  readonly #services: DescService[] = [];
  readonly #inFlight = new Set<ServerCall>();
  readonly #closing = new AbortController();
  readonly #windowBytes: number;
  readonly #tuned = new WeakSet<object>();
  #idle: (() => void)[] = [];

  constructor(options: ServerOptions = {}) {
    this.grpc = new grpc.Server({
      "grpc.max_receive_message_length": options.maxReceiveMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES,
      "grpc.max_send_message_length": options.maxSendMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES,
      ...options.grpcOptions,
    });
    this.#windowBytes = options.flowControlWindowBytes ?? DEFAULT_FLOW_CONTROL_WINDOW;
    this.onCall = [...(options.onCall ?? [])];
    this.#log = options.log ?? ((message, error) => console.error(message, error ?? ""));
    this.health = new HealthReporter();
    if (options.health ?? true) this.addService(Health, healthImpl(this.health));
    if (options.reflection ?? true) addReflection(this, () => this.#services);
  }

  /** Descriptors of every service served, health and reflection included. */
  get services(): readonly DescService[] {
    return this.#services;
  }

  /** Calls currently running. */
  get inFlight(): number {
    return this.#inFlight.size;
  }

  /** Aborts when shutdown starts. */
  get closing(): AbortSignal {
    return this.#closing.signal;
  }

  /** Serves `service` with `impl` (one handler per method, typed from the descriptor). */
  addService<S extends GenServiceMethods>(service: GenService<S>, impl: ServiceImpl<S>): this {
    const desc = service as unknown as DescService;
    const handlers = impl as unknown as Record<string, (...args: never[]) => unknown>;
    const definition: Record<string, grpc.MethodDefinition<Message | DecodeFailure, Buffer>> = {};
    const implementation: grpc.UntypedServiceImplementation = {};
    for (const method of desc.methods) {
      const handler = handlers[method.localName];
      const session = handler === undefined && isSessionMethod(method);
      if (typeof handler !== "function" && !session) {
        throw new Error(`${desc.typeName}: no handler for method ${method.name} (key "${method.localName}")`);
      }
      const w = wireMethod(method);
      definition[method.localName] = {
        path: w.path,
        requestStream: w.requestStream,
        responseStream: w.responseStream,
        requestSerialize: (m) => encodeMessage(method.input, m as Message), // unused by servers
        requestDeserialize: (bytes) => {
          const started = performance.now();
          const message = decodeMessageSafely(method.input, bytes);
          decodeStartedAt.set(message, started);
          if (hops && session) {
            const id = (message as { callId?: bigint }).callId ?? 0n;
            hops.mark(w.path, id, "s.dec0", bytes.length, started);
            hops.mark(w.path, id, "s.dec1");
          }
          return message;
        },
        // Responses are encoded by the wrapper (encode failures become a logged INTERNAL).
        responseSerialize: (bytes) => bytes,
        responseDeserialize: (bytes) => bytes,
        originalName: method.localName,
      };
      implementation[method.localName] = session
        ? this.#wrapSession(desc, method, handlers)
        : this.#wrap(method, handler.bind(impl));
    }
    this.grpc.addService(definition as grpc.ServiceDefinition, implementation);
    this.#services.push(desc);
    return this;
  }

  /**
   * Binds host:port (port 0 picks a free one) and resolves with the bound address. `credentials`
   * default to plaintext; TLS ones come from tls.ts.
   */
  listen(
    host = "127.0.0.1",
    port = 0,
    credentials: grpc.ServerCredentials = grpc.ServerCredentials.createInsecure(),
  ): Promise<BoundAddress> {
    return new Promise((resolve, reject) => {
      this.grpc.bindAsync(
        formatAddress(host, port),
        credentials,
        (err, bound) => {
          if (err) {
            reject(new UnavailableError(`cannot listen on ${formatAddress(host, port)}: ${err.message}`));
            return;
          }
          this.#tuneHttp2();
          resolve({ host, port: bound, address: formatAddress(host, bound) });
        },
      );
    });
  }

  /**
   * Applies the flow-control window and frame size to every new HTTP/2 session. grpc-js has no
   * server option for them, so this reaches into its (version-pinned) `http2Servers` map; if the
   * field is absent the server simply keeps HTTP/2's defaults.
   */
  #tuneHttp2(): void {
    const servers = (this.grpc as unknown as { http2Servers?: Map<EventEmitter, unknown> }).http2Servers;
    const windowBytes = this.#windowBytes;
    if (!(servers instanceof Map) || windowBytes === 0) return;
    for (const h2 of servers.keys()) {
      if (this.#tuned.has(h2)) continue;
      this.#tuned.add(h2);
      h2.on("session", (session: Http2Session) => {
        try {
          session.setLocalWindowSize(windowBytes);
          session.settings({ initialWindowSize: windowBytes, maxFrameSize: MAX_FRAME_SIZE });
        } catch {
          // A runtime without these calls keeps the defaults: slower, still correct.
        }
      });
    }
  }

  /**
   * Graceful stop: health NOT_SERVING, `serverClosing` fires (long streams end), no new calls are
   * accepted, in-flight calls run to completion for up to `graceMs`; then the rest are cancelled
   * and the server is closed.
   */
  async shutdown(graceMs = 10_000): Promise<ShutdownResult> {
    this.health.shutdown();
    this.#closing.abort(new UnavailableError("server is shutting down"));
    const stopped = new Promise<void>((resolve) => this.grpc.tryShutdown(() => resolve()));
    const idle = this.#inFlight.size === 0 ? Promise.resolve() : new Promise<void>((r) => this.#idle.push(r));
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timedOut = new Promise<"timeout">((r) => (timer = setTimeout(() => r("timeout"), graceMs)));
    const outcome = await Promise.race([Promise.all([stopped, idle]).then(() => "done" as const), timedOut]);
    clearTimeout(timer);
    if (outcome === "done") return { drained: true, abandoned: 0 };
    const abandoned = this.#inFlight.size;
    for (const call of this.#inFlight) {
      call.abort(new UnavailableError("server shut down before the call finished"));
    }
    this.grpc.forceShutdown();
    return { drained: abandoned === 0, abandoned };
  }

  /** Immediate stop: cancels every call. */
  forceShutdown(): void {
    this.health.shutdown();
    this.#closing.abort(new UnavailableError("server is shutting down"));
    for (const call of this.#inFlight) call.abort(new UnavailableError("server shut down"));
    this.grpc.forceShutdown();
  }

  #track(call: ServerCall): () => void {
    this.#inFlight.add(call);
    return () => {
      this.#inFlight.delete(call);
      if (this.#inFlight.size === 0) {
        const waiters = this.#idle;
        this.#idle = [];
        for (const w of waiters) w();
      }
    };
  }

  /** Runs the middleware chain around `body`; resolves with the final status, never rejects. */
  async #run(
    call: ServerCall,
    kind: CallInfo["kind"],
    body: () => Promise<void>,
    session?: CallInfo["session"],
  ): Promise<CallStatus> {
    const info: CallInfo = {
      session,
      service: call.service,
      method: call.method,
      path: call.path,
      kind,
      metadata: call.metadata,
      peer: call.peer,
      deadline: call.deadline,
      startedAt: performance.now(),
      ctx: call,
    };
    const inner = async (): Promise<CallStatus> => {
      try {
        await body();
        // A handler that finished after the client gave up: report what the client saw.
        if (call.signal.aborted) return this.#statusOf(call, call.signal.reason);
        return { code: Code.OK, details: "" };
      } catch (error) {
        return this.#statusOf(call, error);
      }
    };
    let next = inner;
    for (let i = this.onCall.length - 1; i >= 0; i--) {
      const middleware = this.onCall[i];
      const after = next;
      next = async () => {
        try {
          return await middleware(info, after);
        } catch (error) {
          this.#log(`${call.path}: call middleware threw`, error);
          return { code: Code.INTERNAL, details: "internal error", error };
        }
      };
    }
    return await next();
  }

  #statusOf(call: ServerCall, error: unknown): CallStatus {
    // Once the call was aborted (client gone, deadline, forced shutdown) the abort decides the
    // status: whatever the handler threw in reaction is not a server bug.
    const thrown = call.signal.aborted ? call.signal.reason : error;
    const status = statusFromError(thrown);
    if (status.internal) this.#log(`${call.path}: internal error`, error);
    // Client strings echoed in the details are cut (lib/echo.ts): a status never repeats 5000 chars.
    return { code: status.code, details: truncateEchoes(status.details), error };
  }

  /** The Session carrier of `service`: its messages run as the service's unary calls (session.ts). */
  #wrapSession(
    service: DescService,
    carrierMethod: DescMethod,
    handlers: Record<string, (...args: never[]) => unknown>,
  ): grpc.UntypedHandleCall {
    const unary = new Map<string, { method: DescMethod; handler: UnaryHandler }>();
    for (const m of service.methods) {
      if (m.methodKind !== "unary") continue;
      const h = handlers[m.localName];
      unary.set(m.localName, { method: m, handler: h.bind(handlers) as never });
    }
    const deps = {
      service,
      carrierMethod,
      handlers: unary,
      run: (
        call: ServerCall,
        kind: CallInfo["kind"],
        session: CallInfo["session"],
        body: () => Promise<void>,
      ) => this.#run(call, kind, body, session),
      track: (call: ServerCall) => this.#track(call),
      closing: this.#closing.signal,
      decodeStartedAt: (m: object) => decodeStartedAt.get(m),
    };
    return (stream: grpc.ServerDuplexStream<unknown, Buffer>) => {
      const call = new ServerCall(carrierMethod, stream, this.#closing.signal);
      const done = this.#track(call);
      this.#run(call, "bidi_streaming", () => serveSession(stream, call, deps), "carrier")
        .then((status) => endStream(stream, call, status)).finally(done);
    };
  }

  // deno-lint-ignore no-explicit-any
  #wrap(method: DescMethod, handler: (...args: any[]) => any): grpc.UntypedHandleCall {
    const encode = (init: unknown): Buffer =>
      encodeMessage(method.output, create(method.output, init as never));
    switch (method.methodKind) {
      case "unary":
        return (stream: grpc.ServerUnaryCall<unknown, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
          const call = new ServerCall(method, stream, this.#closing.signal);
          const done = this.#track(call);
          let response: Buffer | undefined;
          let handlerMs = 0;
          let preMs = NaN;
          this.#run(call, "unary", async () => {
            const started = performance.now();
            preMs = started - (decodeStartedAt.get(stream.request as object) ?? NaN);
            response = encode(await handler(requestOf(stream.request), call));
            handlerMs = performance.now() - started;
          }).then((status) => {
            call.finish();
            if (status.code === Code.OK) {
              call.setTrailer(SERVER_TIME_TRAILER, handlerMs.toFixed(3));
              if (Number.isFinite(preMs)) call.setTrailer(SERVER_PRE_TIME_TRAILER, preMs.toFixed(3));
              call.flushHeaders(stream);
              callback(null, response, call.trailers);
            } else {
              callback({ code: status.code, details: status.details, metadata: call.trailers });
            }
            done();
          });
        };
      case "server_streaming":
        return (stream: grpc.ServerWritableStream<unknown, Buffer>) => {
          const call = new ServerCall(method, stream, this.#closing.signal);
          const done = this.#track(call);
          this.#run(call, "server_streaming", async () => {
            await writeAll(stream, call, handler(requestOf(stream.request), call), encode);
          }).then((status) => endStream(stream, call, status)).finally(done);
        };
      case "client_streaming":
        return (stream: grpc.ServerReadableStream<unknown, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
          const call = new ServerCall(method, stream, this.#closing.signal);
          const done = this.#track(call);
          let response: Buffer | undefined;
          this.#run(call, "client_streaming", async () => {
            response = encode(await handler(readRequests(stream), call));
          }).then((status) => {
            call.finish();
            if (status.code === Code.OK) {
              call.flushHeaders(stream);
              callback(null, response, call.trailers);
            } else {
              callback({ code: status.code, details: status.details, metadata: call.trailers });
            }
            done();
          });
        };
      case "bidi_streaming":
        return (stream: grpc.ServerDuplexStream<unknown, Buffer>) => {
          const call = new ServerCall(method, stream, this.#closing.signal);
          const done = this.#track(call);
          this.#run(call, "bidi_streaming", async () => {
            await writeAll(stream, call, handler(readRequests(stream), call), encode);
          }).then((status) => endStream(stream, call, status)).finally(done);
        };
    }
  }
}

/** A server with health and reflection installed (unless disabled in `options`). */
export function createServer(options: ServerOptions = {}): RpcServer {
  return new RpcServer(options);
}

/** Function form of `server.addService(service, impl)`. */
export function addService<S extends GenServiceMethods>(
  server: RpcServer,
  service: GenService<S>,
  impl: ServiceImpl<S>,
): RpcServer {
  return server.addService(service, impl);
}
