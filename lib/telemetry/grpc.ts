/**
 * OpenTelemetry for the generic gRPC adapter (lib/rpc): a server CallMiddleware and a ClientHook.
 *
 * Server: extracts the W3C trace context (`traceparent`, `tracestate`) from the request metadata,
 * runs the call inside a SERVER span named `<service>/<method>` (so spans the handler starts are
 * its children), records the status code, and records the RPC duration histogram and the
 * request/error counters. Client: starts a CLIENT span under the active context, injects its
 * `traceparent` into the outgoing metadata, and ends it with the call's status.
 *
 * Deno's own instrumentation sees gRPC only as HTTP/2 requests (INFRA.md, "OpenTelemetry"): with
 * OTEL_DENO=true it starts a `POST` client span for the HTTP/2 request under the context active
 * when the call was made, and OVERWRITES the `traceparent` header with that span's id (checked on
 * Deno 2.9.6: the server receives one traceparent, Deno's). So the client hook also sends the
 * CLIENT span's context in `grpc-trace-bin` (gRPC's binary trace-context header, the OpenCensus
 * format), which Deno leaves alone, and the server prefers it; W3C `traceparent` remains the
 * parent for other clients. The parent always comes from the metadata, never from whatever
 * context happens to be active when the handler starts.
 */
import {
  context,
  propagation,
  ROOT_CONTEXT,
  type Span,
  type SpanContext,
  SpanKind,
  SpanStatusCode,
  type TextMapGetter,
  type TextMapSetter,
  trace,
} from "@opentelemetry/api";
import type { Metadata } from "@grpc/grpc-js";
import { Buffer } from "node:buffer";
import type { ClientCallInfo, ClientHook } from "../rpc/client.ts";
import { type CallStatus, Code, codeName } from "../rpc/status.ts";
import type { CallInfo, CallMiddleware } from "../rpc/types.ts";
import {
  ATTR_NET_SOCK_PEER_ADDR,
  ATTR_RPC_GRPC_STATUS_CODE,
  ATTR_RPC_METHOD,
  ATTR_RPC_SERVICE,
  ATTR_RPC_SYSTEM,
  RPC_SYSTEM_GRPC,
} from "./attributes.ts";
import {
  rpcClientDuration,
  rpcClientErrors,
  rpcClientRequests,
  rpcServerDuration,
  rpcServerErrors,
  rpcServerRequests,
} from "./instruments.ts";
import { tracer } from "./tracing.ts";

/** Reads text values of grpc-js Metadata for the propagator (binary "-bin" keys are skipped). */
export const metadataGetter: TextMapGetter<Metadata> = {
  keys: (carrier) => Object.keys(carrier.getMap()),
  get(carrier, key) {
    const values = carrier.get(key).filter((v): v is string => typeof v === "string");
    if (values.length === 0) return undefined;
    return values.length === 1 ? values[0] : values;
  },
};

/** Writes propagation fields into grpc-js Metadata, replacing earlier values of the same key. */
export const metadataSetter: TextMapSetter<Metadata> = {
  set: (carrier, key, value) => carrier.set(key, value),
};

/** gRPC's binary trace-context metadata key (OpenCensus binary format). */
export const GRPC_TRACE_BIN = "grpc-trace-bin";

/**
 * `grpc-trace-bin` value of a span context: version 0, then field 0 (16-byte trace id), field 1
 * (8-byte span id), field 2 (1 byte of trace options, bit 0 = sampled): 29 bytes.
 */
export function encodeTraceBin(sc: SpanContext): Uint8Array {
  const out = new Uint8Array(29);
  out[1] = 0;
  out.set(hexBytes(sc.traceId), 2);
  out[18] = 1;
  out.set(hexBytes(sc.spanId), 19);
  out[27] = 2;
  out[28] = sc.traceFlags & 1;
  return out;
}

/** The remote span context of a `grpc-trace-bin` value, or undefined if it is not a valid one. */
export function decodeTraceBin(bytes: Uint8Array): SpanContext | undefined {
  if (bytes.length < 1 || bytes[0] !== 0) return undefined;
  let traceId = "";
  let spanId = "";
  let traceFlags = 0;
  let i = 1;
  while (i < bytes.length) {
    const field = bytes[i++];
    const size = field === 0 ? 16 : field === 1 ? 8 : field === 2 ? 1 : -1;
    if (size < 0 || i + size > bytes.length) break; // unknown field: the rest is not ours to read
    const value = bytes.subarray(i, i + size);
    if (field === 0) traceId = toHex(value);
    else if (field === 1) spanId = toHex(value);
    else traceFlags = value[0] & 1;
    i += size;
  }
  const sc: SpanContext = { traceId, spanId, traceFlags, isRemote: true };
  return trace.isSpanContextValid(sc) ? sc : undefined;
}

function hexBytes(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * The parent context of a served call: W3C trace context (and baggage) from the metadata, with
 * the span context of `grpc-trace-bin` taking precedence when present (see the file comment).
 */
export function extractParent(metadata: Metadata): ReturnType<typeof propagation.extract> {
  const parent = propagation.extract(ROOT_CONTEXT, metadata, metadataGetter);
  const bin = metadata.get(GRPC_TRACE_BIN).find((v): v is Buffer => typeof v !== "string");
  const sc = bin ? decodeTraceBin(bin) : undefined;
  return sc ? trace.setSpanContext(parent, sc) : parent;
}

/**
 * Server span status under the (old) RPC conventions: only codes that signal a server-side
 * problem mark the SERVER span as an error; a client's bad request (INVALID_ARGUMENT, NOT_FOUND,
 * ...) is a correct answer from the server's point of view.
 */
const SERVER_ERROR_CODES: ReadonlySet<number> = new Set([
  Code.UNKNOWN,
  Code.DEADLINE_EXCEEDED,
  Code.UNIMPLEMENTED,
  Code.INTERNAL,
  Code.UNAVAILABLE,
  Code.DATA_LOSS,
]);

/** Span attributes and metric labels at once (plain strings and numbers fit both). */
function rpcAttributes(service: string, method: string): Record<string, string | number> {
  return { [ATTR_RPC_SYSTEM]: RPC_SYSTEM_GRPC, [ATTR_RPC_SERVICE]: service, [ATTR_RPC_METHOD]: method };
}

/** Sets the status code; an error status (with the handler's exception on the server side). */
function endWithStatus(span: Span, status: CallStatus, isError: boolean, recordException: boolean): void {
  span.setAttribute(ATTR_RPC_GRPC_STATUS_CODE, status.code);
  if (isError) {
    const message = `${codeName(status.code)}: ${status.details}`;
    if (recordException && status.error instanceof Error) span.recordException(status.error);
    span.setStatus({ code: SpanStatusCode.ERROR, message });
  }
  span.end();
}

/** Health probes and reflection: counted in the metrics, but no spans (a probe every few seconds). */
export const PROBE_SERVICES: readonly string[] = [
  "grpc.health.v1.Health",
  "grpc.reflection.v1.ServerReflection",
  "grpc.reflection.v1alpha.ServerReflection",
];

export interface ServerTelemetryOptions {
  /** Full service names whose calls get metrics but no span (e.g. PROBE_SERVICES). */
  skipSpansFor?: readonly string[];
}

/** The server middleware (install it first so its span covers every other middleware). */
export function serverTelemetry(options: ServerTelemetryOptions = {}): CallMiddleware {
  const untraced = new Set(options.skipSpansFor ?? []);
  return async (call: CallInfo, next: () => Promise<CallStatus>): Promise<CallStatus> => {
    const attributes = rpcAttributes(call.service, call.method);
    let span: Span | undefined;
    let status: CallStatus;
    try {
      if (untraced.has(call.service) || call.session === "carrier") {
        status = await next();
      } else {
        const parent = extractParent(call.metadata);
        span = tracer().startSpan(`${call.service}/${call.method}`, {
          kind: SpanKind.SERVER,
          attributes: { ...attributes, [ATTR_NET_SOCK_PEER_ADDR]: call.peer },
        }, parent);
        status = await context.with(trace.setSpan(parent, span), next);
      }
    } catch (error) {
      // next() never rejects (lib/rpc contract); a later middleware's bug still ends the span.
      status = { code: Code.INTERNAL, details: "internal error", error };
    }
    if (span) endWithStatus(span, status, SERVER_ERROR_CODES.has(status.code), true);
    const ms = performance.now() - call.startedAt;
    rpcServerDuration.record(ms, { ...attributes, [ATTR_RPC_GRPC_STATUS_CODE]: status.code });
    rpcServerRequests.add(1, attributes);
    if (status.code !== Code.OK) {
      rpcServerErrors.add(1, { ...attributes, [ATTR_RPC_GRPC_STATUS_CODE]: status.code });
    }
    return status;
  };
}

/**
 * The client hook: a CLIENT span per call under the active context, its `traceparent` (and
 * `tracestate`) in the request metadata. Every non-OK status marks a client span failed.
 */
export function clientTelemetry(): ClientHook {
  return (call: ClientCallInfo) => {
    const started = performance.now();
    const attributes = rpcAttributes(call.service, call.method);
    const parent = context.active();
    const span = tracer().startSpan(
      `${call.service}/${call.method}`,
      { kind: SpanKind.CLIENT, attributes },
      parent,
    );
    propagation.inject(trace.setSpan(parent, span), call.metadata, metadataSetter);
    if (span.isRecording()) {
      call.metadata.set(GRPC_TRACE_BIN, Buffer.from(encodeTraceBin(span.spanContext())));
    }
    let ended = false;
    return (status: CallStatus) => {
      if (ended) return; // a stream cancelled after its end reports twice
      ended = true;
      endWithStatus(span, status, status.code !== Code.OK, false);
      rpcClientDuration.record(performance.now() - started, {
        ...attributes,
        [ATTR_RPC_GRPC_STATUS_CODE]: status.code,
      });
      rpcClientRequests.add(1, attributes);
      if (status.code !== Code.OK) {
        rpcClientErrors.add(1, { ...attributes, [ATTR_RPC_GRPC_STATUS_CODE]: status.code });
      }
    };
  };
}
