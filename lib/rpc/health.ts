/**
 * The standard gRPC health service (grpc.health.v1.Health: Check, Watch, List), which Kubernetes'
 * gRPC probes and grpcurl use (INFRA.md, "gRPC on Deno"). A HealthReporter holds the status per
 * service name; "" is the whole server. During shutdown every status becomes NOT_SERVING and stays so.
 */
import {
  type Health,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from "../../gen/grpc/health/v1/health_pb.ts";
import { NotFoundError } from "../errors.ts";
import type { ImplOf } from "./types.ts";

export { ServingStatus };

type Listener = (service: string, status: ServingStatus) => void;

export class HealthReporter {
  // grpc-go's health server starts with the overall status SERVING; the bootstrap (main.ts) sets
  // NOT_SERVING before binding when a service needs a warm-up.
  readonly #statuses = new Map<string, ServingStatus>([["", ServingStatus.SERVING]]);
  readonly #listeners = new Set<Listener>();
  #shuttingDown = false;

  /** Sets the status of `service` ("" = overall). Ignored once shutdown started. */
  setStatus(service: string, status: ServingStatus): void {
    if (this.#shuttingDown) return;
    this.#set(service, status);
  }

  /** The status of `service`, or undefined if it was never set. */
  getStatus(service: string): ServingStatus | undefined {
    return this.#statuses.get(service);
  }

  /** Every known service and its status. */
  statuses(): Map<string, ServingStatus> {
    return new Map(this.#statuses);
  }

  get shuttingDown(): boolean {
    return this.#shuttingDown;
  }

  /** Marks every service NOT_SERVING and freezes the statuses (server draining). */
  shutdown(): void {
    if (this.#shuttingDown) return;
    for (const service of this.#statuses.keys()) this.#set(service, ServingStatus.NOT_SERVING);
    this.#shuttingDown = true;
  }

  /** Calls `listener` on every change; returns the unsubscribe function. */
  subscribe(listener: Listener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #set(service: string, status: ServingStatus): void {
    if (this.#statuses.get(service) === status) return;
    this.#statuses.set(service, status);
    for (const listener of this.#listeners) listener(service, status);
  }
}

/**
 * Health service handlers over a reporter. Check of an unknown service is NOT_FOUND (as the
 * protocol says); Watch of one streams SERVICE_UNKNOWN and then any later status. Watch streams
 * end when the client goes away or once NOT_SERVING was sent at shutdown, so draining never waits
 * on them.
 */
export function healthImpl(reporter: HealthReporter): ImplOf<typeof Health> {
  return {
    check(request) {
      const status = reporter.getStatus(request.service);
      if (status === undefined) throw new NotFoundError(`service: unknown service "${request.service}"`);
      return { status };
    },
    list() {
      const statuses: Record<string, { status: ServingStatus }> = {};
      for (const [service, status] of reporter.statuses()) statuses[service] = { status };
      return { statuses };
    },
    async *watch(request, ctx) {
      const service = request.service;
      const queue: ServingStatus[] = [];
      let wake: (() => void) | undefined;
      const unsubscribe = reporter.subscribe((s, status) => {
        if (s !== service) return;
        queue.push(status);
        wake?.();
      });
      const onAbort = () => wake?.();
      ctx.signal.addEventListener("abort", onAbort);
      ctx.serverClosing.addEventListener("abort", onAbort);
      try {
        let last = reporter.getStatus(service) ?? ServingStatus.SERVICE_UNKNOWN;
        yield { status: last };
        while (!ctx.signal.aborted) {
          if (reporter.shuttingDown && queue.length === 0) return; // NOT_SERVING was sent
          if (queue.length === 0) {
            await new Promise<void>((resolve) => (wake = resolve));
            wake = undefined;
            continue;
          }
          const status = queue.shift() as ServingStatus;
          if (status === last) continue;
          last = status;
          yield { status };
        }
      } finally {
        unsubscribe();
        ctx.signal.removeEventListener("abort", onAbort);
        ctx.serverClosing.removeEventListener("abort", onAbort);
      }
    },
  };
}
