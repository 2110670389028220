/**
 * Retries with exponential backoff for calls to the policy and reward services. Only transient
 * failures are retried: gRPC UNAVAILABLE (14: the server is down, restarting or draining) and
 * DEADLINE_EXCEEDED (4: the call took too long). Everything else (bad input, not found, a failed
 * precondition) is a bug or a config error and is rethrown at once.
 *
 * Retrying DEADLINE_EXCEEDED is safe for the policy's TrainStep because the request carries
 * `expected_optimizer_step` and a `request_id` (policy.proto): a retry of an applied step returns
 * the recorded result instead of stepping twice. Other calls are pure functions of their inputs.
 *
 * Delays: attempt k (k = 1 after the first failure) waits
 *   d_k = min(max_backoff, initial_backoff * multiplier^(k-1)) * (1 - jitter * u),  u in [0, 1)
 * with u from a caller-given seeded source, so tests (and resumed runs) are deterministic; with
 * jitter 0 the delays are exact.
 */
import type { RetryConfig } from "./config_types.ts";

/** gRPC status codes that mean "try again". */
export const RETRYABLE_GRPC_CODES: ReadonlySet<number> = new Set([14, 4]);
/** The same as status names, as the domain errors of lib/errors.ts carry them. */
export const RETRYABLE_CODE_NAMES: ReadonlySet<string> = new Set(["UNAVAILABLE", "DEADLINE_EXCEEDED"]);

export interface RetryPolicy {
  /** Total attempts including the first; 1 = no retry. */
  maxAttempts: number;
  initialBackoffMs: number;
  maxBackoffMs: number;
  multiplier: number;
  /** 0..1: the share of each delay that may be randomised away. */
  jitter: number;
  /** No attempt starts later than this after the first one (ms). */
  maxTotalMs: number;
}

/** The retry section of the run config (config.ts `rpc.retry`) as a RetryPolicy. */
export function retryPolicyFromConfig(r: RetryConfig): RetryPolicy {
  return {
    maxAttempts: r.max_attempts,
    initialBackoffMs: r.initial_backoff_ms,
    maxBackoffMs: r.max_backoff_ms,
    multiplier: r.multiplier,
    jitter: r.jitter,
    maxTotalMs: r.max_total_ms,
  };
}

/** True for errors whose `.code` is 14 / 4 (grpc-js) or "UNAVAILABLE" / "DEADLINE_EXCEEDED". */
export function isRetryableError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === "number") return RETRYABLE_GRPC_CODES.has(code);
  if (typeof code === "string") return RETRYABLE_CODE_NAMES.has(code);
  return false;
}

/** The wait before attempt `retry + 1` (retry = 1 after the first failure). */
export function backoffDelayMs(policy: RetryPolicy, retry: number, random: () => number = () => 0): number {
  const base = Math.min(policy.maxBackoffMs, policy.initialBackoffMs * policy.multiplier ** (retry - 1));
  return base * (1 - policy.jitter * random());
}

export interface RetryEvent {
  /** The attempt that failed (1-based). */
  attempt: number;
  error: unknown;
  delayMs: number;
}

export interface RetryOptions {
  /** Uniform [0, 1) source for jitter (e.g. seededRandom(seed, stream)); default: no jitter. */
  random?: () => number;
  /** Waits `ms`; default a timer that an abort signal cuts short. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** Clock in ms; default Date.now. */
  now?: () => number;
  /** Called before each wait, for logs and metrics. */
  onRetry?: (event: RetryEvent) => void;
  /** Overrides which errors are retried. */
  isRetryable?: (error: unknown) => boolean;
  /** Stops waiting and rethrows the last error when aborted. */
  signal?: AbortSignal;
}

/** Error-free sleep that an AbortSignal ends early. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}

function checkPolicy(p: RetryPolicy): void {
  const bad = (field: string, v: number, rule: string) => {
    throw new RangeError(`retry.${field}: ${v} ${rule}`);
  };
  if (!Number.isSafeInteger(p.maxAttempts) || p.maxAttempts < 1) {
    bad("maxAttempts", p.maxAttempts, "must be an integer >= 1");
  }
  if (!(p.initialBackoffMs >= 0)) bad("initialBackoffMs", p.initialBackoffMs, "must be >= 0");
  if (!(p.maxBackoffMs >= p.initialBackoffMs)) {
    bad("maxBackoffMs", p.maxBackoffMs, "must be >= initialBackoffMs");
  }
  if (!(p.multiplier >= 1)) bad("multiplier", p.multiplier, "must be >= 1");
  if (!(p.jitter >= 0 && p.jitter <= 1)) bad("jitter", p.jitter, "must be in [0, 1]");
  if (!(p.maxTotalMs >= 0)) bad("maxTotalMs", p.maxTotalMs, "must be >= 0");
}

/**
 * Calls `fn(attempt)` until it resolves, a non-retryable error is thrown, the attempts or the
 * total time run out, or `signal` aborts; then rethrows the last error unchanged (its `.code`
 * intact), with `retryAttempts` set on it when it is an object.
 */
export async function withRetry<T>(
  fn: (attempt: number) => Promise<T>,
  policy: RetryPolicy,
  options: RetryOptions = {},
): Promise<T> {
  checkPolicy(policy);
  const now = options.now ?? Date.now;
  const wait = options.sleep ?? sleep;
  const retryable = options.isRetryable ?? isRetryableError;
  const started = now();
  for (let attempt = 1;; attempt++) {
    try {
      return await fn(attempt);
    } catch (error) {
      const giveUp = (): never => {
        if (error !== null && typeof error === "object") {
          try {
            (error as { retryAttempts?: number }).retryAttempts = attempt;
          } catch { /* frozen error objects keep their shape */ }
        }
        throw error;
      };
      if (!retryable(error) || attempt >= policy.maxAttempts || options.signal?.aborted) giveUp();
      const delayMs = backoffDelayMs(policy, attempt, options.random);
      if (now() + delayMs - started > policy.maxTotalMs) giveUp();
      options.onRetry?.({ attempt, error, delayMs });
      await wait(delayMs, options.signal);
      if (options.signal?.aborted) giveUp();
    }
  }
}
