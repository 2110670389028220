/**
 * Server side of the Session RPC (proto: PolicyService/RewardService `Session`): one long-lived
 * bidi stream whose messages stand for the service's unary calls (issue 21: ~2 ms of fixed
 * transport per unary call on loopback, ~0.4 ms per message on an open stream).
 *
 * Each message runs through the server's middleware chain as the unary call it stands for (same
 * CallInfo method/path, so auth per method, per-method concurrency limits, one telemetry span per
 * message parented by the message's traceparent, metrics by the inner method). The carrier itself
 * gets no span (CallInfo.session = "carrier"), so a step stays one trace.
 *
 * Per-message failures answer that call_id with a SessionError and the stream goes on: unset
 * `call` and zero/duplicate `call_id` are INVALID_ARGUMENT naming the field, more than
 * MAX_SESSION_IN_FLIGHT calls at once RESOURCE_EXHAUSTED, calls after shutdown began UNAVAILABLE.
 * An undecodable frame ends the stream with INVALID_ARGUMENT. Half-close or shutdown: in-flight
 * calls finish, then the stream ends OK.
 */
import {
  create,
  type DescMessage,
  type DescMethod,
  type DescService,
  type Message,
} from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import type { Buffer } from "node:buffer";
import { InvalidArgumentError } from "../errors.ts";
import { DecodeFailure, encodeMessage } from "./methods.ts";
import { type CallSource, drained, ServerCall } from "./server_call.ts";
import { type CallStatus, Code } from "./status.ts";
import type { CallInfo } from "./types.ts";
import { DeadlineQueue } from "./deadline_queue.ts";
import { hops } from "./hop_trace.ts";

/** Name of the carrier RPC a service declares to get session dispatch. */
export const SESSION_METHOD = "Session";

/** Calls one stream may have running at once; more are answered RESOURCE_EXHAUSTED. */
export const MAX_SESSION_IN_FLIGHT = 64;

const MAX_QUEUED_ANSWERS = 256;

/** Message metadata copied onto the per-message call (the rest comes from the carrier's headers). */
export const SESSION_METADATA_KEYS: readonly string[] = ["traceparent", "tracestate", "baggage"];

/** True when `method` is a Session carrier: bidi, `call` oneof in, `result` oneof out. */
export function isSessionMethod(method: DescMethod): boolean {
  return method.name === SESSION_METHOD && method.methodKind === "bidi_streaming" &&
    method.input.oneofs.some((o) => o.name === "call") &&
    method.output.oneofs.some((o) => o.name === "result");
}

// deno-lint-ignore no-explicit-any
export type UnaryHandler = (request: any, ctx: ServerCall) => unknown;

export interface SessionDeps {
  service: DescService;
  carrierMethod: DescMethod;
  /** Unary handlers by method localName (= the oneof field's localName). */
  handlers: Map<string, { method: DescMethod; handler: UnaryHandler }>;
  /** The server's middleware runner (server.ts #run). */
  run: (
    call: ServerCall,
    kind: CallInfo["kind"],
    session: CallInfo["session"],
    body: () => Promise<void>,
  ) => Promise<CallStatus>;
  /** Registers a running call with the server (drain on shutdown). */
  track: (call: ServerCall) => () => void;
  closing: AbortSignal;
  /** When the carrier frame began decoding (server_pre_ms). */
  decodeStartedAt: (message: object) => number | undefined;
  maxInFlight?: number;
}

interface SessionRequest extends Message {
  callId: bigint;
  call: { case: string | undefined; value?: Message };
  metadata: { [key: string]: string };
  timeoutMs: number;
}

/** Serves one carrier stream; resolves when the stream may end OK, rejects to end it with an error. */
export async function serveSession(
  stream: grpc.ServerDuplexStream<unknown, Buffer>,
  carrier: ServerCall,
  deps: SessionDeps,
): Promise<void> {
  const output: DescMessage = deps.carrierMethod.output;
  const limit = deps.maxInFlight ?? MAX_SESSION_IN_FLIGHT;
  const inFlight = new Set<bigint>();
  let inputEnded = false;
  let wake: () => void = () => {};
  let writing: Promise<void> = Promise.resolve();
  // Answers queued behind HTTP/2 backpressure; past MAX_QUEUED_ANSWERS the stream stops reading
  // until they drain, so a client that sends and never reads cannot grow the queue without bound.
  let queued = 0;
  /** A write is waiting for 'drain'. */
  let blocked = false;
  const deadlines = new DeadlineQueue();

  const send = (init: Record<string, unknown>): void => {
    hops?.mark(carrier.path, init.callId as bigint, "s.enc0");
    let bytes: Buffer;
    try {
      bytes = encodeMessage(output, create(output, init as never));
    } catch (e) {
      bytes = encodeMessage(
        output,
        create(output, {
          callId: init.callId,
          result: { case: "error", value: { code: Code.INTERNAL, message: "response does not encode" } },
        } as never),
      );
      console.error(`${carrier.path}: session response does not encode`, e);
    }
    hops?.mark(carrier.path, init.callId as bigint, "s.enc1", bytes.length);
    const callId = init.callId as bigint;
    // Nothing queued and no drain awaited: write now, not one promise turn later (issue 21 hop
    // profile). Otherwise behind the queue, in order.
    if (queued === 0 && !blocked) {
      if (!write(callId, bytes)) {
        blocked = true;
        writing = writing.then(async () => {
          await drained(stream, carrier.signal).catch(() => {});
          blocked = false;
        });
      }
      return;
    }
    queued++;
    writing = writing.then(async () => {
      queued--;
      if (!write(callId, bytes)) {
        blocked = true;
        await drained(stream, carrier.signal).catch(() => {});
        blocked = false;
      }
    });
  };
  /** False when the stream's buffer is full (wait for 'drain'). */
  const write = (callId: bigint, bytes: Buffer): boolean => {
    if (carrier.signal.aborted || stream.writableEnded) return true;
    hops?.mark(carrier.path, callId, "s.write0");
    const flushed = stream.write(bytes);
    hops?.mark(carrier.path, callId, "s.write1");
    return flushed;
  };
  const fail = (callId: bigint, code: number, message: string) =>
    send({ callId, result: { case: "error", value: { code, message } } });

  const dispatch = (req: SessionRequest, preStarted: number | undefined): void => {
    const callId = req.callId;
    const name = req.call.case;
    hops?.mark(carrier.path, callId, "s.dispatch", name);
    const entry = name === undefined ? undefined : deps.handlers.get(name);
    if (!entry || req.call.value === undefined) {
      return fail(callId, Code.INVALID_ARGUMENT, "call: no call set (one of the service's unary methods)");
    }
    const metadata = carrier.metadata.clone();
    for (const key of SESSION_METADATA_KEYS) {
      const v = req.metadata[key];
      if (v !== undefined) metadata.set(key, v);
    }
    const carrierDeadline = carrier.deadline?.getTime();
    const own = req.timeoutMs > 0 ? Date.now() + req.timeoutMs : undefined;
    const source: CallSource = {
      metadata,
      deadline: own === undefined ? carrierDeadline : Math.min(own, carrierDeadline ?? Infinity),
      parent: carrier.signal,
      peer: carrier.peer,
      deadlines,
    };
    const call = new ServerCall(entry.method, stream, deps.closing, source);
    hops?.mark(carrier.path, callId, "s.call");
    const done = deps.track(call);
    inFlight.add(callId);
    let response: Message | undefined;
    let handlerMs = 0;
    let preMs = 0;
    hops?.mark(carrier.path, callId, "s.run");
    deps.run(call, "unary", "message", async () => {
      const started = performance.now();
      hops?.mark(carrier.path, callId, "s.handler0", undefined, started);
      preMs = preStarted === undefined ? 0 : started - preStarted;
      response = create(entry.method.output, await entry.handler(req.call.value, call) as never);
      handlerMs = performance.now() - started;
      hops?.mark(carrier.path, callId, "s.handler1");
    }).then((status) => {
      hops?.mark(carrier.path, callId, "s.done");
      call.finish();
      if (status.code === Code.OK && response) {
        send({
          callId,
          result: { case: entry.method.localName, value: response },
          serverMs: handlerMs,
          serverPreMs: preMs,
        });
      } else fail(callId, status.code, status.details);
      inFlight.delete(callId);
      done();
      wake();
    });
  };

  const onClosing = () => wake();
  deps.closing.addEventListener("abort", onClosing);
  const handle = (req: SessionRequest): void => {
    hops?.mark(carrier.path, req.callId, "s.read");
    if (req.callId === 0n) fail(0n, Code.INVALID_ARGUMENT, "call_id: must be non-zero");
    else if (inFlight.has(req.callId)) {
      fail(req.callId, Code.INVALID_ARGUMENT, `call_id: ${req.callId} is already in flight on this stream`);
    } else if (deps.closing.aborted) fail(req.callId, Code.UNAVAILABLE, "server is shutting down");
    else if (inFlight.size >= limit) {
      fail(
        req.callId,
        Code.RESOURCE_EXHAUSTED,
        `call_id: ${inFlight.size} calls in flight, the limit is ${limit}`,
      );
    } else dispatch(req, deps.decodeStartedAt(req));
  };
  // Messages are handled in the stream's 'data' event itself (flowing mode, as readable.ts reads),
  // not through an async iterator: that cost a few promise turns per message (issue 21 hop profile).
  const reading = new Promise<void>((resolve, reject) => {
    let done = false;
    const finish = (error?: unknown) => {
      if (done) return;
      done = true;
      stream.off("data", onData);
      if (error !== undefined) return reject(error);
      inputEnded = true;
      wake();
      resolve();
    };
    const onData = (item: unknown) => {
      if (done) return;
      if (item instanceof DecodeFailure) return finish(new InvalidArgumentError("request", item.problem));
      try {
        handle(item as SessionRequest);
      } catch (error) {
        return finish(error);
      }
      if (queued > MAX_QUEUED_ANSWERS && !stream.isPaused()) {
        stream.pause();
        writing.then(() => !done && stream.resume());
      }
    };
    stream.on("data", onData);
    stream.on("error", (error: unknown) => finish(error));
    // 'close' without 'end': the stream was destroyed (a cancelled call); stop waiting.
    stream.on("end", () => finish());
    stream.on("close", () => finish());
  });
  // Once the stream ended OK (shutdown), a later read failure has no one to report to; it must not
  // become an unhandled rejection (which would end the process). The race below still sees it.
  reading.catch(() => {});
  try {
    await Promise.race([
      reading,
      new Promise<void>((resolve) => {
        wake = () => {
          if ((inputEnded || deps.closing.aborted) && inFlight.size === 0) resolve();
        };
        wake();
      }),
    ]);
    // Input ended or shutdown: the race above returned once nothing is in flight.
    if (inFlight.size > 0) {
      await new Promise<void>((resolve) => {
        wake = () => inFlight.size === 0 && resolve();
        wake();
      });
    }
    await writing;
  } catch (error) {
    // An undecodable frame ends the stream: its calls in flight end with it.
    carrier.abort(error instanceof Error ? error : new Error(String(error)));
    throw error;
  } finally {
    deps.closing.removeEventListener("abort", onClosing);
    deadlines.close();
  }
}
