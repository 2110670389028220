/**
 * Per-call state of the generic server (server.ts): the CallContext handlers receive, and the
 * stream helpers every call kind shares (request reading, backpressured writes, the final status).
 * Split from server.ts by concern; session.ts builds one ServerCall per message of a Session stream.
 */
import type { DescMethod, Message } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import type { Buffer } from "node:buffer";
import type { EventEmitter } from "node:events";
import type { Readable } from "node:stream";
import { CancelledError, DeadlineExceededError, InvalidArgumentError } from "../errors.ts";
import { asBuffer, DecodeFailure } from "./methods.ts";
import { readAll } from "./readable.ts";
import { type CallStatus, Code } from "./status.ts";
import type { CallContext } from "./types.ts";
import type { DeadlineQueue } from "./deadline_queue.ts";

const NO_DEADLINE_MS = 2 ** 31 - 1; // setTimeout's limit; later deadlines are treated as none
const DEADLINE_SLACK_MS = 50;

/** Where a call that is not its own HTTP/2 stream (a session message) takes its context from. */
export interface CallSource {
  metadata: grpc.Metadata;
  /** Absolute deadline in ms since the epoch, or undefined for none. */
  deadline: number | undefined;
  /** The carrier's signal: the message is aborted with it. */
  parent: AbortSignal;
  /**
   * The carrier's peer. Asking grpc-js again per message reads the socket's address through
   * node:http2's socket proxy, ~0.1 ms per message after model work (issue 21 hop profile).
   */
  peer?: string;
  /** The carrier's deadline timer (deadline_queue.ts), instead of a setTimeout per message. */
  deadlines?: DeadlineQueue;
}

export function requestOf(request: unknown): Message {
  if (request instanceof DecodeFailure) throw new InvalidArgumentError("request", request.problem);
  return request as Message;
}

export async function* readRequests(stream: Readable): AsyncGenerator<Message> {
  for await (const item of readAll(stream)) yield requestOf(item);
}

export type WritableCall =
  | grpc.ServerWritableStream<unknown, Buffer>
  | grpc.ServerDuplexStream<unknown, Buffer>;

/** Writes every message of `responses`, waiting on backpressure; stops when the call aborts. */
export async function writeAll(
  stream: WritableCall,
  call: ServerCall,
  responses: AsyncIterable<unknown>,
  encode: (init: unknown) => Buffer,
): Promise<void> {
  for await (const item of responses) {
    call.signal.throwIfAborted();
    const bytes = encode(item);
    call.flushHeaders(stream);
    if (!stream.write(bytes)) await drained(stream, call.signal);
  }
}

export function drained(stream: WritableCall, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const onDrain = () => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    };
    const onAbort = () => {
      stream.off("drain", onDrain);
      reject(signal.reason);
    };
    stream.once("drain", onDrain);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

export function endStream(stream: WritableCall, call: ServerCall, status: CallStatus): void {
  call.finish();
  if (status.code === Code.OK) {
    call.flushHeaders(stream);
    stream.end(call.trailers);
  } else {
    stream.emit("error", { code: status.code, details: status.details, metadata: call.trailers });
  }
}

export type AnyServerCall =
  | grpc.ServerUnaryCall<unknown, Buffer>
  | grpc.ServerReadableStream<unknown, Buffer>
  | grpc.ServerWritableStream<unknown, Buffer>
  | grpc.ServerDuplexStream<unknown, Buffer>;

/** Per-call state; it is the CallContext handlers receive. */
export class ServerCall implements CallContext {
  readonly service: string;
  readonly method: string;
  readonly path: string;
  readonly metadata: grpc.Metadata;
  readonly deadline: Date | undefined;
  readonly peer: string;
  readonly serverClosing: AbortSignal;
  readonly trailers = new grpc.Metadata();
  readonly #headers = new grpc.Metadata();
  #headersSent = false;
  readonly #controller = new AbortController();
  readonly #timer: ReturnType<typeof setTimeout> | undefined;
  readonly #cancelDeadline: (() => void) | undefined;
  readonly #onCancel: () => void;
  readonly #stream: AnyServerCall;
  /** True for a message on a session stream: no headers of its own, cancelled with its carrier. */
  readonly #detached: boolean;
  #onParentAbort: (() => void) | undefined;
  readonly #source: CallSource | undefined;

  constructor(method: DescMethod, stream: AnyServerCall, serverClosing: AbortSignal, source?: CallSource) {
    this.service = method.parent.typeName;
    this.method = method.name;
    this.path = `/${this.service}/${this.method}`;
    this.metadata = source?.metadata ?? stream.metadata;
    this.peer = source?.peer ?? stream.getPeer();
    this.serverClosing = serverClosing;
    this.#stream = stream;
    this.#detached = source !== undefined;
    this.#source = source;
    const deadline = source ? source.deadline : stream.getDeadline();
    const ms = deadline instanceof Date ? deadline.getTime() : deadline;
    if (ms !== undefined && Number.isFinite(ms)) {
      this.deadline = new Date(ms);
      const left = Math.max(0, ms - Date.now());
      if (left < NO_DEADLINE_MS) {
        const expire = () => this.abort(new DeadlineExceededError("deadline exceeded"));
        if (source?.deadlines) this.#cancelDeadline = source.deadlines.add(ms, expire);
        else this.#timer = setTimeout(expire, left);
      }
    }
    this.#onCancel = () => {
      // A client whose deadline passes resets the stream; that reset can arrive a little before
      // the server's own deadline timer fires (the server's deadline starts when the request
      // arrives), so a cancel near the deadline is reported as the deadline.
      const nearDeadline = this.deadline !== undefined &&
        Date.now() >= this.deadline.getTime() - DEADLINE_SLACK_MS;
      this.abort(
        nearDeadline
          ? new DeadlineExceededError("deadline exceeded")
          : new CancelledError("the client cancelled the call"),
      );
    };
    if (source) {
      // A message on a session stream ends when its carrier does.
      const parent = source.parent;
      this.#onParentAbort = () => this.abort(parent.reason);
      if (parent.aborted) this.#onParentAbort();
      else parent.addEventListener("abort", this.#onParentAbort, { once: true });
    } else {
      (stream as EventEmitter).on("cancelled", this.#onCancel);
    }
  }

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  abort(reason: Error): void {
    if (!this.#controller.signal.aborted) this.#controller.abort(reason);
  }

  header(key: string): string | undefined {
    const value = this.metadata.get(key)[0];
    if (value === undefined) return undefined;
    return typeof value === "string" ? value : value.toString("base64");
  }

  setHeader(key: string, value: string | Uint8Array): void {
    if (this.#headersSent) {
      throw new Error(`${this.path}: response headers were already sent (setHeader("${key}"))`);
    }
    this.#headers.add(key, toMetadataValue(value));
  }

  setTrailer(key: string, value: string | Uint8Array): void {
    this.trailers.add(key, toMetadataValue(value));
  }

  /** Sends the response headers if any were set and none were sent yet. */
  flushHeaders(stream: AnyServerCall): void {
    if (this.#headersSent || this.#detached) return;
    this.#headersSent = true;
    if (Object.keys(this.#headers.getMap()).length > 0) stream.sendMetadata(this.#headers);
  }

  /** Releases the deadline timer and the cancel listener. */
  finish(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#cancelDeadline?.();
    // A session message listens on its carrier's signal, never on the stream's "cancelled".
    if (this.#onParentAbort) this.#source?.parent.removeEventListener("abort", this.#onParentAbort);
    else (this.#stream as EventEmitter).off("cancelled", this.#onCancel);
  }
}

export function toMetadataValue(value: string | Uint8Array): string | Buffer {
  return typeof value === "string" ? value : asBuffer(value);
}
