/**
 * Types of the generic adapter: handler signatures derived from protobuf-es v2 service descriptors,
 * the per-call context handlers receive, and the middleware hook around every call.
 */
import type { DescMessage, MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import type { Metadata } from "@grpc/grpc-js";
import type { GenService, GenServiceMethods } from "@bufbuild/protobuf/codegenv2";
import type { CallStatus } from "./status.ts";

export type { GenService, GenServiceMethods };

/** What a handler receives besides the request. */
export interface CallContext {
  /** Full service name, e.g. "rdpo.v1.RewardService". */
  readonly service: string;
  /** Method name as in the proto, e.g. "Score". */
  readonly method: string;
  /** "/rdpo.v1.RewardService/Score". */
  readonly path: string;
  /** Incoming request metadata (grpc-js Metadata: get(key) returns all values). */
  readonly metadata: Metadata;
  /** The client's deadline, if it set one. */
  readonly deadline: Date | undefined;
  /** Aborts when the client cancels, the deadline passes, or the server is force-closed. */
  readonly signal: AbortSignal;
  /**
   * Aborts when the server starts draining (SIGTERM). Long-lived streams (health Watch, progress
   * streams) should end when it fires so the drain does not wait for them.
   */
  readonly serverClosing: AbortSignal;
  /** Remote address, e.g. "127.0.0.1:53124". */
  readonly peer: string;
  /** First value of an incoming metadata key as text (binary "-bin" keys are base64'd). */
  header(key: string): string | undefined;
  /** Adds response header metadata; throws once headers were sent (first message written). */
  setHeader(key: string, value: string | Uint8Array): void;
  /** Adds trailer metadata, sent with the final status (also on errors). */
  setTrailer(key: string, value: string | Uint8Array): void;
}

type Method = GenServiceMethods[string];
type In<M extends Method> = MessageShape<M["input"]>;
/** Handlers may return a full message or a plain init object (`create(schema, init)` is applied). */
type Out<M extends Method> = MessageInitShape<M["output"]>;

export type UnaryImpl<M extends Method> = (request: In<M>, ctx: CallContext) => Promise<Out<M>> | Out<M>;
export type ServerStreamingImpl<M extends Method> = (
  request: In<M>,
  ctx: CallContext,
) => AsyncIterable<Out<M>>;
export type ClientStreamingImpl<M extends Method> = (
  requests: AsyncIterable<In<M>>,
  ctx: CallContext,
) => Promise<Out<M>>;
export type BidiStreamingImpl<M extends Method> = (
  requests: AsyncIterable<In<M>>,
  ctx: CallContext,
) => AsyncIterable<Out<M>>;

/** The handler of one method, chosen by its methodKind. */
export type MethodImpl<M extends Method> = M["methodKind"] extends "unary" ? UnaryImpl<M>
  : M["methodKind"] extends "server_streaming" ? ServerStreamingImpl<M>
  : M["methodKind"] extends "client_streaming" ? ClientStreamingImpl<M>
  : BidiStreamingImpl<M>;

/** An implementation of a whole service: one handler per method, keyed by local (lowerCamel) name. */
export type ServiceImpl<S extends GenServiceMethods> =
  & { [K in keyof S as K extends "session" ? never : K]: MethodImpl<S[K]> }
  // A Session carrier (session.ts) is served by the adapter from the unary handlers.
  & { [K in keyof S & "session"]?: MethodImpl<S[K]> };

/** The implementation type of a generated service: `const impl: ImplOf<typeof RewardService> = {...}`. */
export type ImplOf<T> = T extends GenService<infer S> ? ServiceImpl<S> : never;

/** What middleware sees of a call. */
export interface CallInfo {
  readonly service: string;
  readonly method: string;
  readonly path: string;
  readonly kind: "unary" | "server_streaming" | "client_streaming" | "bidi_streaming";
  /** Incoming metadata; middleware may read trace context from it (W3C `traceparent`). */
  readonly metadata: Metadata;
  readonly peer: string;
  readonly deadline: Date | undefined;
  /** performance.now() when the call reached the adapter. */
  readonly startedAt: number;
  readonly ctx: CallContext;
  /**
   * Set on Session streams (session.ts): "carrier" for the stream itself (no span of its own),
   * "message" for each call it carries (method/path are the unary method's).
   */
  readonly session?: "carrier" | "message";
}

/**
 * Runs around every call (server side). `next()` runs the handler (and later middleware) and
 * resolves with the status the call will end with; it never rejects. A middleware may return a
 * different status (e.g. deny a call without calling next). This is the single place where
 * OpenTelemetry spans and trace-context extraction go: wrap `next()` in an active span.
 */
export type CallMiddleware = (call: CallInfo, next: () => Promise<CallStatus>) => Promise<CallStatus>;

/** Any message schema (used where the adapter is generic over methods). */
export type AnySchema = DescMessage;
