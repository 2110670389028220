/**
 * The per-service Prometheus endpoint: `GET /metrics` renders the process registry in the text
 * exposition format. Started by lib/rpc/main.ts when --metrics-port (env <PREFIX>_METRICS_PORT)
 * is not 0.
 */
import { UnavailableError } from "../errors.ts";
import { defaultRegistry } from "./metrics.ts";
import { PROMETHEUS_CONTENT_TYPE, type PromRegistry } from "./prometheus.ts";

export interface MetricsServer {
  hostname: string;
  port: number;
  /** "http://host:port/metrics" */
  url: string;
  close(): Promise<void>;
}

export interface MetricsServerOptions {
  hostname?: string;
  /** 0 picks a free port. */
  port: number;
  registry?: PromRegistry;
}

export function startMetricsServer(options: MetricsServerOptions): Promise<MetricsServer> {
  const registry = options.registry ?? defaultRegistry;
  const hostname = options.hostname ?? "127.0.0.1";
  return new Promise((resolve, reject) => {
    let server: Deno.HttpServer<Deno.NetAddr>;
    try {
      server = Deno.serve({
        hostname,
        port: options.port,
        onListen(addr) {
          const host = addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname;
          resolve({
            hostname: addr.hostname,
            port: addr.port,
            url: `http://${host}:${addr.port}/metrics`,
            close: () => server.shutdown(),
          });
        },
        onError(error) {
          console.error("metrics endpoint:", error);
          return new Response("internal error\n", { status: 500 });
        },
      }, (request) => {
        const path = new URL(request.url).pathname;
        if (path !== "/metrics") return new Response("not found: try /metrics\n", { status: 404 });
        if (request.method !== "GET" && request.method !== "HEAD") {
          return new Response("method not allowed\n", { status: 405, headers: { allow: "GET, HEAD" } });
        }
        return new Response(request.method === "HEAD" ? null : registry.render(), {
          headers: { "content-type": PROMETHEUS_CONTENT_TYPE },
        });
      });
    } catch (error) {
      reject(
        new UnavailableError(
          `cannot serve metrics on ${hostname}:${options.port}: ${
            error instanceof Error ? error.message : error
          }`,
        ),
      );
    }
  });
}
