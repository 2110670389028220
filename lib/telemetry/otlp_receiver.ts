/**
 * An in-process OTLP/HTTP receiver on loopback for tests and local debugging: accepts
 * `POST /v1/traces` with protobuf bodies (what Deno's OTEL_DENO exporter sends) and keeps the
 * decoded spans; `/v1/metrics` and `/v1/logs` are accepted and counted. Point a process at it with
 * OTEL_EXPORTER_OTLP_ENDPOINT=<endpoint> (and OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf).
 */
import { decodeExportTraceRequest, type OtlpSpan } from "./otlp_traces.ts";

export interface OtlpReceiver {
  /** "http://127.0.0.1:PORT" (the exporter appends /v1/traces). */
  endpoint: string;
  /** Every span received so far, in arrival order. */
  readonly spans: readonly OtlpSpan[];
  /** Request counts per path ("/v1/traces", "/v1/metrics", "/v1/logs"). */
  readonly requests: Readonly<Record<string, number>>;
  /** Bodies that could not be decoded, with the reason (a test should assert it stays empty). */
  readonly errors: readonly string[];
  /** Resolves once `predicate(spans)` holds; rejects after `timeoutMs` with what was received. */
  waitFor(predicate: (spans: readonly OtlpSpan[]) => boolean, timeoutMs: number): Promise<void>;
  close(): Promise<void>;
}

const PROTOBUF = "application/x-protobuf";

/**
 * The environment that makes a Deno process export its traces to `endpoint` (a receiver's) as
 * `serviceName`, with console capture off and a short batch delay so spans arrive while a test waits.
 */
export function otlpExportEnv(endpoint: string, serviceName: string): Record<string, string> {
  return {
    OTEL_DENO: "true",
    OTEL_EXPORTER_OTLP_ENDPOINT: endpoint,
    OTEL_EXPORTER_OTLP_PROTOCOL: "http/protobuf",
    OTEL_SERVICE_NAME: serviceName,
    OTEL_DENO_CONSOLE: "ignore",
    OTEL_BSP_SCHEDULE_DELAY: "200",
  };
}

export function startOtlpReceiver(): Promise<OtlpReceiver> {
  const spans: OtlpSpan[] = [];
  const requests: Record<string, number> = {};
  const errors: string[] = [];
  let waiters: (() => void)[] = [];
  const notify = () => {
    const w = waiters;
    waiters = [];
    for (const f of w) f();
  };
  return new Promise((resolve) => {
    const server = Deno.serve({
      hostname: "127.0.0.1",
      port: 0,
      onListen(addr) {
        resolve({
          endpoint: `http://127.0.0.1:${addr.port}`,
          spans,
          requests,
          errors,
          async waitFor(predicate, timeoutMs) {
            const deadline = Date.now() + timeoutMs;
            while (!predicate(spans)) {
              const left = deadline - Date.now();
              if (left <= 0) {
                const names = [...new Set(spans.map((s) => `${s.resource["service.name"]}:${s.name}`))];
                throw new Error(
                  `OTLP receiver: condition not met after ${timeoutMs} ms; ${spans.length} spans received ` +
                    `(${names.join(", ") || "none"})`,
                );
              }
              let timer: ReturnType<typeof setTimeout> | undefined;
              await new Promise<void>((r) => {
                waiters.push(r);
                timer = setTimeout(r, Math.min(left, 200));
              });
              clearTimeout(timer);
            }
          },
          close: () => server.shutdown(),
        });
      },
    }, async (request) => {
      const path = new URL(request.url).pathname;
      if (request.method !== "POST") return new Response("POST only\n", { status: 405 });
      const body = new Uint8Array(await request.arrayBuffer());
      requests[path] = (requests[path] ?? 0) + 1;
      if (path === "/v1/traces") {
        const type = request.headers.get("content-type") ?? "";
        if (!type.startsWith(PROTOBUF)) {
          errors.push(`/v1/traces: content-type ${JSON.stringify(type)}, expected ${PROTOBUF}`);
          return new Response("expected application/x-protobuf\n", { status: 415 });
        }
        try {
          spans.push(...decodeExportTraceRequest(body));
        } catch (e) {
          errors.push(`/v1/traces: ${e instanceof Error ? e.message : String(e)}`);
          return new Response("bad request\n", { status: 400 });
        }
        notify();
      }
      // An empty ExportTraceServiceResponse (or metrics/logs response) is zero bytes.
      return new Response(new Uint8Array(0), { status: 200, headers: { "content-type": PROTOBUF } });
    });
  });
}
