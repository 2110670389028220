/**
 * Client side of the Session RPC (session.ts): the service's unary methods sent as messages on one
 * long-lived bidi stream, with the same signatures and CallOptions as createClient's (deadline,
 * signal, onTrailer with the rdpo-server-ms trailers, onMessageBytes, onCodecMs), so callers and
 * their retry policy do not change.
 *
 * Per call the client hooks run on a fresh Metadata as for a unary call (telemetry: one CLIENT span
 * per message); its trace keys travel in the message, the rest (authorization) in the carrier's
 * headers. When the stream fails (GOAWAY, reset, server restart) every call in flight rejects with
 * the stream's status (UNAVAILABLE for a lost connection) and the next call reopens it, so retries
 * on UNAVAILABLE cover a restart exactly as for unary calls. A server without Session (UNIMPLEMENTED)
 * switches this client to the unary methods for good, re-sending the calls that were waiting.
 */
import { create, type DescMessage, type DescMethod, type DescService, fromBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import type { Buffer } from "node:buffer";
import { type CallOptions, type Client, clientParts, toMetadata, toRpcError } from "./client.ts";
import { encodeMessage, methodPath } from "./methods.ts";
import { SERVER_PRE_TIME_TRAILER, SERVER_TIME_TRAILER } from "./server.ts";
import { SESSION_METADATA_KEYS, SESSION_METHOD } from "./session.ts";
import { type CallStatus, Code, RpcError } from "./status.ts";
import type { GenService, GenServiceMethods } from "./types.ts";
import { hops } from "./hop_trace.ts";
import { DeadlineQueue } from "./deadline_queue.ts";

/** Keys a hook may set that describe one call, not the connection (sent in the message). */
const TRACE_KEYS = new Set([...SESSION_METADATA_KEYS, "grpc-trace-bin"]);

interface Pending {
  /** The carrier the call was written to (it fails with it). */
  carrier: grpc.ClientDuplexStream<Buffer, Frame>;
  method: DescMethod;
  request: unknown;
  options: CallOptions;
  bytesSent: number;
  encodeMs: number;
  resolve: (value: unknown) => void;
  reject: (error: RpcError) => void;
  end: (status: CallStatus) => void;
  cleanup: () => void;
}

interface Frame {
  callId: bigint;
  result: { case: string | undefined; value?: unknown };
  serverMs: number;
  serverPreMs: number;
  bytes: number;
  decodeMs: number;
}

export interface SessionClientStats {
  /** Calls sent as Session messages / as unary RPCs (fallback). */
  stream: number;
  unary: number;
  /** Carrier streams opened (1 + reopenings after failures). */
  opened: number;
}

/**
 * `base`'s unary methods over `service`'s Session stream; streaming methods and close() are
 * `base`'s. `base` must come from createClient (its channel and hooks are shared).
 */
export function createSessionClient<S extends GenServiceMethods>(
  service: GenService<S>,
  base: Client<S>,
): Client<S> & { sessionStats: SessionClientStats } {
  const desc = service as unknown as DescService;
  const parts = clientParts(base);
  const carrierMethod = desc.methods.find((m) => m.name === SESSION_METHOD);
  if (!parts || !carrierMethod) {
    throw new Error(`${desc.typeName}: no Session method or not a createClient client`);
  }
  const { channel, hooks } = parts;
  const input: DescMessage = carrierMethod.input;
  const output: DescMessage = carrierMethod.output;
  const path = methodPath(carrierMethod);
  const stats: SessionClientStats = { stream: 0, unary: 0, opened: 0 };
  const pending = new Map<bigint, Pending>();
  let nextId = 1n;
  let unsupported = false;
  // One carrier per distinct set of connection headers (normally one: the same token every call);
  // a call with other headers gets its own, so no per-call metadata is lost or borrowed.
  const carriers = new Map<string, grpc.ClientDuplexStream<Buffer, Frame>>();
  // One timer for every call's deadline instead of a setTimeout + clearTimeout per call (issue 21).
  const deadlines = new DeadlineQueue();
  const baseMethods = base as unknown as Record<string, (r: unknown, o?: CallOptions) => Promise<unknown>>;

  const decodeFrame = (bytes: Buffer): Frame => {
    const t = performance.now();
    const m = fromBinary(output, bytes) as unknown as Frame;
    if (hops) {
      hops.mark(path, m.callId, "c.dec0", bytes.length, t);
      hops.mark(path, m.callId, "c.dec1");
    }
    return { ...m, result: m.result, bytes: bytes.length, decodeMs: performance.now() - t };
  };

  const settleOne = (id: bigint, p: Pending, error: RpcError | undefined, value?: unknown) => {
    pending.delete(id);
    p.cleanup();
    if (error) {
      p.end({ code: error.code, details: error.details, error });
      p.reject(error);
    } else {
      p.end({ code: Code.OK, details: "" });
      hops?.mark(path, id, "c.resolve");
      p.resolve(value);
    }
  };

  const onStreamEnd = (key: string, stream: grpc.ClientDuplexStream<Buffer, Frame>, error: RpcError) => {
    if (carriers.get(key) === stream) carriers.delete(key);
    const waiting = [...pending.entries()].filter(([, p]) => p.carrier === stream);
    if (error.code === Code.UNIMPLEMENTED) {
      unsupported = true;
      for (const [id, p] of waiting) {
        pending.delete(id);
        p.cleanup();
        p.end({ code: Code.OK, details: "" }); // the unary call below has its own hooks
        baseMethods[p.method.localName](p.request, p.options).then(p.resolve, p.reject);
      }
      return;
    }
    for (const [id, p] of waiting) settleOne(id, p, error);
  };

  const open = (key: string, authMetadata: grpc.Metadata): grpc.ClientDuplexStream<Buffer, Frame> => {
    const stream = channel.makeBidiStreamRequest(path, (b: Buffer) => b, decodeFrame, authMetadata, {});
    stats.opened += 1;
    stream.on("data", (frame: Frame) => {
      hops?.mark(path, frame.callId, "c.data");
      const p = pending.get(frame.callId);
      if (!p) return; // answered after its deadline or cancel: already settled
      p.options.onMessageBytes?.(p.bytesSent, frame.bytes);
      p.options.onCodecMs?.(p.encodeMs, frame.decodeMs);
      const trailers = new grpc.Metadata();
      if (frame.result.case === "error") {
        const e = frame.result.value as { code: number; message: string };
        p.options.onTrailer?.(trailers);
        settleOne(frame.callId, p, new RpcError(e.code, e.message, trailers));
        return;
      }
      trailers.set(SERVER_TIME_TRAILER, frame.serverMs.toFixed(3));
      trailers.set(SERVER_PRE_TIME_TRAILER, frame.serverPreMs.toFixed(3));
      p.options.onTrailer?.(trailers);
      settleOne(frame.callId, p, undefined, frame.result.value);
    });
    stream.on("error", (e: unknown) => onStreamEnd(key, stream, toRpcError(e)));
    stream.on("status", (s: grpc.StatusObject) => {
      // The server ended the carrier (shutdown, error): close our side too, so the HTTP/2 stream
      // is fully closed and a draining server need not wait out its grace period for it.
      if (!stream.writableEnded) stream.end();
      onStreamEnd(
        key,
        stream,
        new RpcError(s.code === Code.OK ? Code.UNAVAILABLE : s.code, s.details || "session stream ended"),
      );
    });
    return stream;
  };

  const callOverSession = (method: DescMethod, request: unknown, options: CallOptions): Promise<unknown> => {
    if (unsupported) return baseMethods[method.localName](request, options);
    if (!hops) return send(method, request, options);
    const id = nextId;
    hops.mark(path, id, "c.call", method.localName);
    return send(method, request, options).then((value) => {
      hops?.mark(path, id, "c.resumed");
      return value;
    });
  };

  const send = (method: DescMethod, request: unknown, options: CallOptions): Promise<unknown> => {
    options.onTransport?.("stream");
    stats.stream += 1;
    const metadata = toMetadata(options.metadata);
    const info = {
      service: desc.typeName,
      method: method.name,
      path: methodPath(method),
      kind: method.methodKind,
      metadata,
    };
    const ends: ((status: CallStatus) => void)[] = [];
    for (const hook of hooks) {
      const e = hook(info);
      if (e) ends.push(e);
    }
    const end = (status: CallStatus) => ends.forEach((e) => e(status));
    hops?.mark(path, nextId, "c.hooks");
    const messageMetadata: Record<string, string> = {};
    const connection = new grpc.Metadata();
    for (const [key, value] of Object.entries(metadata.getMap())) {
      if (TRACE_KEYS.has(key)) {
        if (typeof value === "string") messageMetadata[key] = value;
      } else connection.set(key, value);
    }
    const timeoutMs = options.timeoutMs ??
      (options.deadline !== undefined ? new Date(options.deadline).getTime() - Date.now() : undefined);
    const id = nextId++;
    const t0 = performance.now();
    hops?.mark(path, id, "c.enc0", undefined, t0);
    let bytes: Buffer;
    try {
      bytes = encodeMessage(
        input,
        create(input, {
          callId: id,
          call: { case: method.localName, value: create(method.input, request as never) },
          metadata: messageMetadata,
          timeoutMs: timeoutMs === undefined ? 0 : Math.max(1, Math.ceil(timeoutMs)),
        } as never),
      );
    } catch (e) {
      const error = new RpcError(Code.INTERNAL, `${method.input.typeName}: cannot encode request: ${e}`);
      end({ code: error.code, details: error.details, error });
      return Promise.reject(error);
    }
    const encodeMs = performance.now() - t0;
    hops?.mark(path, id, "c.enc1", bytes.length);
    const key = JSON.stringify(Object.entries(connection.getMap()).map(([k, v]) => [k, String(v)]).sort());
    let carrier = carriers.get(key);
    if (!carrier) {
      carrier = open(key, connection);
      carriers.set(key, carrier);
    }
    const writeTo = carrier;
    return new Promise((resolve, reject) => {
      let cancelDeadline: (() => void) | undefined;
      const signal = options.signal;
      const onAbort = () => {
        const p = pending.get(id);
        if (p) settleOne(id, p, new RpcError(Code.CANCELLED, "cancelled by the caller"));
      };
      const p: Pending = {
        carrier: writeTo,
        method,
        request,
        options,
        bytesSent: bytes.length,
        encodeMs,
        resolve,
        reject,
        end,
        cleanup: () => {
          cancelDeadline?.();
          signal?.removeEventListener("abort", onAbort);
        },
      };
      pending.set(id, p);
      if (timeoutMs !== undefined) {
        cancelDeadline = deadlines.add(Date.now() + Math.max(0, timeoutMs), () => {
          const q = pending.get(id);
          if (q) settleOne(id, q, new RpcError(Code.DEADLINE_EXCEEDED, "deadline exceeded"));
        });
      }
      if (signal) {
        if (signal.aborted) queueMicrotask(onAbort);
        else signal.addEventListener("abort", onAbort, { once: true });
      }
      hops?.mark(path, id, "c.write0");
      writeTo.write(bytes);
      hops?.mark(path, id, "c.write1");
    });
  };

  const client: Record<string, unknown> = { ...base, sessionStats: stats };
  for (const method of desc.methods) {
    if (method.methodKind !== "unary") continue;
    client[method.localName] = (request: unknown, options: CallOptions = {}) =>
      callOverSession(method, request, options);
  }
  client.close = () => {
    deadlines.close();
    for (const c of carriers.values()) c.end();
    carriers.clear();
    base.close();
  };
  return client as Client<S> & { sessionStats: SessionClientStats };
}
