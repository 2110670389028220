/**
 * gRPC status codes, the client-side `RpcError`, and the mapping from thrown errors to a status.
 * Core code throws the domain errors of lib/errors.ts; this is the one place that turns them into
 * wire status codes (ARCHITECTURE.md: core never imports grpc-js).
 */
import type { Metadata } from "@grpc/grpc-js";
import { ServiceError } from "../errors.ts";

/** Numeric gRPC status codes (https://grpc.github.io/grpc/core/md_doc_statuscodes.html). */
export const Code = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

export type CodeName = keyof typeof Code;
export type CodeNumber = (typeof Code)[CodeName];

const NAMES: Record<number, CodeName> = Object.fromEntries(
  Object.entries(Code).map(([name, n]) => [n, name as CodeName]),
);

/** "NOT_FOUND" for 5; "CODE_<n>" for numbers outside the table. */
export function codeName(code: number): string {
  return NAMES[code] ?? `CODE_${code}`;
}

/**
 * A failed call as seen by a client (or thrown by a handler to pass a status through unchanged):
 * `code` is the numeric status, `details` the server's message, `metadata` the trailers.
 */
export class RpcError extends Error {
  override name = "RpcError";
  constructor(
    readonly code: number,
    readonly details: string,
    readonly metadata?: Metadata,
  ) {
    super(`${codeName(code)}: ${details}`);
  }
  get codeName(): string {
    return codeName(this.code);
  }
}

/** The status a call ends with. `error` is the thrown value when the handler failed. */
export interface CallStatus {
  code: number;
  details: string;
  error?: unknown;
}

/**
 * Maps a thrown value to the status sent to the client.
 * - lib/errors.ts ServiceError subclasses: their own code and message (the message names the field).
 * - RpcError (e.g. a downstream call failed): passed through with its code and details.
 * - anything else is a server bug: INTERNAL with a message that leaks nothing (`internal` = true,
 *   the caller logs the real error).
 */
export function statusFromError(error: unknown): CallStatus & { internal: boolean } {
  if (error instanceof ServiceError) {
    return { code: Code[error.code], details: error.message, error, internal: false };
  }
  if (error instanceof RpcError) {
    return { code: error.code, details: error.details, error, internal: false };
  }
  return { code: Code.INTERNAL, details: "internal error", error, internal: true };
}
