/**
 * Per-method concurrency limit (--max-concurrent-calls): a call that would make more than `limit`
 * calls of the same method run at once ends at once with RESOURCE_EXHAUSTED naming the limit,
 * before its handler allocates anything. Memory grows with concurrent requests (each holds its
 * decoded request and intermediate tensors), so this bounds it where request size alone does not.
 * Health and reflection are exempt: a probe must answer while the service is saturated.
 */
import { Code } from "./status.ts";
import type { CallMiddleware } from "./types.ts";
import { PROBE_SERVICES } from "../telemetry/grpc.ts";

export const DEFAULT_MAX_CONCURRENT_CALLS = 256;

export interface ConcurrencyLimiter {
  middleware: CallMiddleware;
  /** Calls of `path` running now. */
  running(path: string): number;
  /** Calls refused so far, all methods. */
  readonly refused: number;
}

export function concurrencyLimit(limit: number, flag = "--max-concurrent-calls"): ConcurrencyLimiter {
  const running = new Map<string, number>();
  let refused = 0;
  const exempt = new Set<string>(PROBE_SERVICES);
  const middleware: CallMiddleware = async (call, next) => {
    if (exempt.has(call.service)) return await next();
    const n = running.get(call.path) ?? 0;
    if (n >= limit) {
      refused++;
      return {
        code: Code.RESOURCE_EXHAUSTED,
        details: `${call.method}: ${n} calls already running, the limit is ${limit} per method (${flag})`,
      };
    }
    running.set(call.path, n + 1);
    try {
      return await next();
    } finally {
      const left = (running.get(call.path) ?? 1) - 1;
      if (left === 0) running.delete(call.path);
      else running.set(call.path, left);
    }
  };
  return {
    middleware,
    running: (path) => running.get(path) ?? 0,
    get refused() {
      return refused;
    },
  };
}
