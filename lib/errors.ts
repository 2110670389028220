/**
 * Domain errors thrown by pure core code (no gRPC imports). The generic gRPC adapter in lib/rpc maps
 * each class to its status code; messages name the field and the problem, e.g.
 * `new InvalidArgumentError("latents.shape", "expected 4 dims [B, C, H, W], got [2, 4]")`.
 */

/** Base class: `code` is the gRPC status name the adapter maps it to. */
export abstract class ServiceError extends Error {
  abstract readonly code:
    | "INVALID_ARGUMENT"
    | "NOT_FOUND"
    | "ALREADY_EXISTS"
    | "FAILED_PRECONDITION"
    | "RESOURCE_EXHAUSTED"
    | "PERMISSION_DENIED"
    | "UNAUTHENTICATED"
    | "UNAVAILABLE"
    | "ABORTED"
    | "DEADLINE_EXCEEDED"
    | "CANCELLED"
    | "UNIMPLEMENTED"
    | "INTERNAL";
}

/** A field of a request is malformed. `field` is its path, e.g. "images[3].data". */
export class InvalidArgumentError extends ServiceError {
  readonly code = "INVALID_ARGUMENT" as const;
  constructor(readonly field: string, problem: string) {
    super(field ? `${field}: ${problem}` : problem);
    this.name = "InvalidArgumentError";
  }
}

export class NotFoundError extends ServiceError {
  readonly code = "NOT_FOUND" as const;
  override name = "NotFoundError";
}

export class AlreadyExistsError extends ServiceError {
  readonly code = "ALREADY_EXISTS" as const;
  override name = "AlreadyExistsError";
}

/** The request is valid but the system is not in a state to run it (e.g. optimizer step mismatch). */
export class FailedPreconditionError extends ServiceError {
  readonly code = "FAILED_PRECONDITION" as const;
  override name = "FailedPreconditionError";
}

/** Over a configured limit (message size, batch, image side, concurrency). */
export class ResourceExhaustedError extends ServiceError {
  readonly code = "RESOURCE_EXHAUSTED" as const;
  override name = "ResourceExhaustedError";
}

export class PermissionDeniedError extends ServiceError {
  readonly code = "PERMISSION_DENIED" as const;
  override name = "PermissionDeniedError";
}

export class UnauthenticatedError extends ServiceError {
  readonly code = "UNAUTHENTICATED" as const;
  override name = "UnauthenticatedError";
}

/** Transient: the caller may retry (e.g. a scorer is still loading, the server is draining). */
export class UnavailableError extends ServiceError {
  readonly code = "UNAVAILABLE" as const;
  override name = "UnavailableError";
}

export class AbortedError extends ServiceError {
  readonly code = "ABORTED" as const;
  override name = "AbortedError";
}

export class DeadlineExceededError extends ServiceError {
  readonly code = "DEADLINE_EXCEEDED" as const;
  override name = "DeadlineExceededError";
}

export class CancelledError extends ServiceError {
  readonly code = "CANCELLED" as const;
  override name = "CancelledError";
}

export class UnimplementedError extends ServiceError {
  readonly code = "UNIMPLEMENTED" as const;
  override name = "UnimplementedError";
}
