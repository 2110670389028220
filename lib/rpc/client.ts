/**
 * Generic gRPC client: a typed object with one async method per RPC of any protobuf-es v2 service,
 * derived from the descriptor (server streaming and bidi return AsyncIterables). Failures reject
 * with RpcError carrying the numeric status code and the server's details.
 */
import {
  create,
  type DescMessage,
  type DescMethod,
  type DescService,
  fromBinary,
  type MessageInitShape,
  type MessageShape,
} from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import type { Buffer } from "node:buffer";
import { encodeMessage, wireMethod } from "./methods.ts";
import { readAll } from "./readable.ts";
import { DEFAULT_FLOW_CONTROL_WINDOW, DEFAULT_MAX_MESSAGE_BYTES } from "./server.ts";
import { type CallStatus, Code, RpcError } from "./status.ts";
import type { GenService, GenServiceMethods } from "./types.ts";
import { installHttp2Guard } from "./h2_guard.ts";

installHttp2Guard(); // before any session exists (denoland/deno#36788, see h2_guard.ts)

export interface ClientOptions {
  /** Largest response accepted (default DEFAULT_MAX_MESSAGE_BYTES). */
  maxReceiveMessageBytes?: number;
  /** Largest request sent (default DEFAULT_MAX_MESSAGE_BYTES). */
  maxSendMessageBytes?: number;
  /** Deadline applied to calls that set none (ms); unset: no deadline. */
  defaultTimeoutMs?: number;
  /** Hooks run before every call, in order (trace-context injection goes here). */
  onCall?: ClientHook[];
  /** HTTP/2 flow-control window (default DEFAULT_FLOW_CONTROL_WINDOW, see server.ts); 0: HTTP/2's default. */
  flowControlWindowBytes?: number;
  /** Extra grpc-js channel options (e.g. a service config for round_robin). */
  grpcOptions?: grpc.ChannelOptions;
  /** Transport credentials (default plaintext); TLS ones from client_security.ts / tls.ts. */
  credentials?: grpc.ChannelCredentials;
}

export interface CallOptions {
  /** Deadline relative to now, in milliseconds. */
  timeoutMs?: number;
  /** Absolute deadline (overrides timeoutMs). */
  deadline?: Date | number;
  /** Request metadata. */
  metadata?: grpc.Metadata | Record<string, string | string[]>;
  /** Cancels the call (it rejects with CANCELLED). */
  signal?: AbortSignal;
  /** Receives the response headers. */
  onHeader?: (metadata: grpc.Metadata) => void;
  /** Receives the trailers (on success and on failure). */
  onTrailer?: (metadata: grpc.Metadata) => void;
  /**
   * Unary calls: receives the encoded request and response message sizes in bytes (response 0
   * when none arrived) once the call settles, so callers can account for what they send.
   */
  onMessageBytes?: (sent: number, received: number) => void;
  /**
   * Unary calls: receives the milliseconds this client spent encoding the request and decoding the
   * response (0 when none arrived) once the call settles (the wire-time breakdown, issue 21).
   */
  onCodecMs?: (encodeMs: number, decodeMs: number) => void;
  /** Unary calls: told how the call travelled (its own HTTP/2 stream, or a Session message). */
  onTransport?: (transport: "unary" | "stream") => void;
}

/** What a client hook sees; `metadata` may be modified (it is sent). */
export interface ClientCallInfo {
  readonly service: string;
  readonly method: string;
  readonly path: string;
  readonly kind: DescMethod["methodKind"];
  readonly metadata: grpc.Metadata;
}

/** Runs before a call starts; may return a function called with the final status. */
export type ClientHook = (call: ClientCallInfo) => void | ((status: CallStatus) => void);

type Method = GenServiceMethods[string];
type Req<M extends Method> = MessageInitShape<M["input"]>;
type Res<M extends Method> = MessageShape<M["output"]>;

export type ClientMethod<M extends Method> = M["methodKind"] extends "unary"
  ? (request: Req<M>, options?: CallOptions) => Promise<Res<M>>
  : M["methodKind"] extends "server_streaming"
    ? (request: Req<M>, options?: CallOptions) => AsyncIterable<Res<M>>
  : M["methodKind"] extends "client_streaming"
    ? (requests: AsyncIterable<Req<M>>, options?: CallOptions) => Promise<Res<M>>
  : (requests: AsyncIterable<Req<M>>, options?: CallOptions) => AsyncIterable<Res<M>>;

/** Typed client of a service: one method per RPC (lowerCamel names), plus close(). */
export type Client<S extends GenServiceMethods> = { [K in keyof S]: ClientMethod<S[K]> } & {
  /** Closes the channel; calls in flight are cancelled. */
  close(): void;
};

/** The client type of a generated service: `Client<typeof RewardService>`-like via ClientOf. */
export type ClientOf<T> = T extends GenService<infer S> ? Client<S> : never;

const RESERVED = new Set(["close"]);

export function toMetadata(metadata: CallOptions["metadata"]): grpc.Metadata {
  if (metadata instanceof grpc.Metadata) return metadata.clone();
  const md = new grpc.Metadata();
  for (const [key, value] of Object.entries(metadata ?? {})) {
    for (const v of Array.isArray(value) ? value : [value]) md.add(key, v);
  }
  return md;
}

export function toRpcError(error: unknown): RpcError {
  if (error instanceof RpcError) return error;
  const e = error as Partial<grpc.ServiceError>;
  if (typeof e?.code === "number") return new RpcError(e.code, e.details ?? e.message ?? "", e.metadata);
  return new RpcError(Code.UNKNOWN, error instanceof Error ? error.message : String(error));
}

function encodeRequest(schema: DescMessage, init: unknown): Buffer {
  try {
    return encodeMessage(schema, create(schema, init as never));
  } catch (e) {
    throw new Error(
      `${schema.typeName}: cannot encode request: ${e instanceof Error ? e.message : String(e)}`,
    );
  }
}

const identity = (b: Buffer) => b;

/** The completion callback of a call with one response: ends hooks, settles the promise. */
function settle(
  detach: () => void,
  end: (error?: RpcError) => void,
  resolve: (value: unknown) => void,
  reject: (error: RpcError) => void,
): (err: grpc.ServiceError | null, res?: unknown) => void {
  return (err, res) => {
    detach();
    if (err) {
      const error = toRpcError(err);
      end(error);
      reject(error);
    } else {
      end();
      resolve(res);
    }
  };
}

/**
 * A client for `service` at `address` ("host:port", or any grpc-js target such as
 * "dns:///policy:50051"). Plaintext unless `options.credentials` says otherwise.
 */
export function createClient<S extends GenServiceMethods>(
  service: GenService<S>,
  address: string,
  options: ClientOptions = {},
): Client<S> {
  const desc = service as unknown as DescService;
  const channel = new grpc.Client(address, options.credentials ?? grpc.credentials.createInsecure(), {
    "grpc.max_receive_message_length": options.maxReceiveMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES,
    "grpc.max_send_message_length": options.maxSendMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES,
    ...(options.flowControlWindowBytes === 0
      ? {}
      : { "grpc-node.flow_control_window": options.flowControlWindowBytes ?? DEFAULT_FLOW_CONTROL_WINDOW }),
    ...options.grpcOptions,
  });
  const hooks = options.onCall ?? [];
  const client: Record<string, unknown> = { close: () => channel.close() };
  for (const method of desc.methods) {
    if (RESERVED.has(method.localName)) {
      throw new Error(`${desc.typeName}.${method.name}: method name clashes with the client's close()`);
    }
    client[method.localName] = makeMethod(channel, method, hooks, options.defaultTimeoutMs);
  }
  channels.set(client, channel);
  clientHooks.set(client, hooks);
  return client as Client<S>;
}

/** Resolves when the channel is connected, rejects with UNAVAILABLE after `timeoutMs`. */
export function waitForReady(client: { close(): void }, timeoutMs: number): Promise<void> {
  const channel = channels.get(client);
  if (!channel) return Promise.reject(new Error("waitForReady: not a client made by createClient"));
  return new Promise((resolve, reject) => {
    channel.waitForReady(Date.now() + timeoutMs, (error) => {
      if (error) reject(new RpcError(Code.UNAVAILABLE, `not ready after ${timeoutMs} ms: ${error.message}`));
      else resolve();
    });
  });
}

const channels = new WeakMap<object, grpc.Client>();
const clientHooks = new WeakMap<object, ClientHook[]>();

/** The channel and hooks behind a client made by createClient (session_client.ts shares them). */
export function clientParts(client: object): { channel: grpc.Client; hooks: ClientHook[] } | undefined {
  const channel = channels.get(client);
  return channel ? { channel, hooks: clientHooks.get(client) ?? [] } : undefined;
}

function makeMethod(
  channel: grpc.Client,
  method: DescMethod,
  hooks: ClientHook[],
  defaultTimeoutMs: number | undefined,
): unknown {
  const { path } = wireMethod(method);
  const decode = (bytes: Buffer) => fromBinary(method.output, bytes);

  /** Metadata, deadline and hooks of one call; `end` reports the status to the hooks. */
  const begin = (options: CallOptions) => {
    const metadata = toMetadata(options.metadata);
    const info: ClientCallInfo = {
      service: method.parent.typeName,
      method: method.name,
      path,
      kind: method.methodKind,
      metadata,
    };
    const ends: ((status: CallStatus) => void)[] = [];
    for (const hook of hooks) {
      const end = hook(info);
      if (end) ends.push(end);
    }
    const timeout = options.timeoutMs ?? defaultTimeoutMs;
    const deadline = options.deadline ?? (timeout !== undefined ? Date.now() + timeout : undefined);
    const end = (error?: RpcError) => {
      const status: CallStatus = error
        ? { code: error.code, details: error.details, error }
        : { code: Code.OK, details: "" };
      for (const e of ends) e(status);
    };
    return { metadata, callOptions: deadline !== undefined ? { deadline } : {}, end };
  };

  /** Wires signal, header and trailer callbacks to a started call. */
  const attach = (call: grpc.Call, options: CallOptions): () => void => {
    if (options.onHeader) call.on("metadata", options.onHeader);
    if (options.onTrailer) {
      const onTrailer = options.onTrailer;
      call.on("status", (status: grpc.StatusObject) => onTrailer(status.metadata));
    }
    const signal = options.signal;
    if (!signal) return () => {};
    const onAbort = () => call.cancel();
    if (signal.aborted) queueMicrotask(onAbort);
    else signal.addEventListener("abort", onAbort, { once: true });
    return () => signal.removeEventListener("abort", onAbort);
  };

  switch (method.methodKind) {
    case "unary":
      return (request: unknown, options: CallOptions = {}) => {
        const encodeStarted = performance.now();
        const bytes = encodeRequest(method.input, request);
        const encodeMs = performance.now() - encodeStarted;
        const { metadata, callOptions, end } = begin(options);
        const onBytes = options.onMessageBytes;
        const onCodec = options.onCodecMs;
        options.onTransport?.("unary");
        let received = 0;
        let decodeMs = 0;
        const decodeCounted = onBytes || onCodec
          ? (b: Buffer) => {
            received = b.length;
            const t = performance.now();
            try {
              return decode(b);
            } finally {
              decodeMs = performance.now() - t;
            }
          }
          : decode;
        return new Promise((resolve, reject) => {
          let detach = () => {};
          const call = channel.makeUnaryRequest(
            path,
            identity,
            decodeCounted,
            bytes,
            metadata,
            callOptions,
            settle(
              () => {
                detach();
                onBytes?.(bytes.length, received);
                onCodec?.(encodeMs, decodeMs);
              },
              end,
              resolve,
              reject,
            ),
          );
          detach = attach(call, options);
        });
      };
    case "client_streaming":
      return (requests: AsyncIterable<unknown>, options: CallOptions = {}) => {
        const { metadata, callOptions, end } = begin(options);
        return new Promise((resolve, reject) => {
          let detach = () => {};
          const call = channel.makeClientStreamRequest(
            path,
            identity,
            decode,
            metadata,
            callOptions,
            settle(() => detach(), end, resolve, reject),
          );
          detach = attach(call, options);
          pump(requests, call, method.input);
        });
      };
    case "server_streaming":
      return (request: unknown, options: CallOptions = {}) => {
        const bytes = encodeRequest(method.input, request);
        return readStream(() => {
          const started = begin(options);
          const call = channel.makeServerStreamRequest(
            path,
            identity,
            decode,
            bytes,
            started.metadata,
            started.callOptions,
          );
          return { call, end: started.end, detach: attach(call, options) };
        });
      };
    case "bidi_streaming":
      return (requests: AsyncIterable<unknown>, options: CallOptions = {}) =>
        readStream(() => {
          const started = begin(options);
          const call = channel.makeBidiStreamRequest(
            path,
            identity,
            decode,
            started.metadata,
            started.callOptions,
          );
          pump(requests, call, method.input);
          return { call, end: started.end, detach: attach(call, options) };
        });
  }
}

/** Writes every request of `requests` to `call` (backpressure respected), then half-closes. */
async function pump(
  requests: AsyncIterable<unknown>,
  call: grpc.ClientWritableStream<Buffer> | grpc.ClientDuplexStream<Buffer, unknown>,
  schema: DescMessage,
): Promise<void> {
  try {
    for await (const request of requests) {
      if (call.destroyed || call.writableEnded) return;
      if (!call.write(encodeRequest(schema, request))) {
        await new Promise<void>((resolve) => {
          call.once("drain", resolve);
          call.once("close", resolve);
        });
      }
    }
    call.end();
  } catch (e) {
    // A failing request source cancels the call; the reader sees CANCELLED.
    console.error(`client stream: request source failed: ${e instanceof Error ? e.message : String(e)}`);
    call.cancel();
  }
}

/** The responses of a streaming call as an AsyncIterable; the call starts on first iteration. */
async function* readStream(
  start: () => {
    call: grpc.ClientReadableStream<unknown> | grpc.ClientDuplexStream<Buffer, unknown>;
    end: (error?: RpcError) => void;
    detach: () => void;
  },
): AsyncGenerator<never> {
  const { call, end, detach } = start();
  let finished = false;
  try {
    for await (const message of readAll(call)) yield message as never;
    finished = true;
    end();
  } catch (e) {
    finished = true;
    const error = toRpcError(e);
    end(error);
    throw error;
  } finally {
    detach();
    if (!finished) {
      // The consumer stopped early: cancel the server's work.
      call.cancel();
      end(new RpcError(Code.CANCELLED, "the client stopped reading"));
    }
  }
}
