/**
 * OpenTelemetry spans and metrics for the RDPO services (ARCHITECTURE.md, lib/telemetry). Names in
 * attributes.ts; export through Deno's built-in OTLP exporter (OTEL_DENO=true) and the per-service
 * Prometheus endpoint (metrics_server.ts). deploy/otel/README.md shows how to look at them.
 */
export * as attributes from "./attributes.ts";
export { clientTelemetry, PROBE_SERVICES, serverTelemetry, type ServerTelemetryOptions } from "./grpc.ts";
export { type Counter, createCounter, createHistogram, defaultRegistry, type Histogram } from "./metrics.ts";
export { type MetricsServer, startMetricsServer } from "./metrics_server.ts";
export { PromRegistry } from "./prometheus.ts";
export { failSpan, startSpan, withSpan, withSpanSync } from "./tracing.ts";
export { phaseSpan, StepTrace } from "./rdpo.ts";
export { traceScorerBatch } from "./reward.ts";
export { traceDecode, traceTrainStep, traceUnet } from "./policy.ts";
export { otlpExportEnv, startOtlpReceiver } from "./otlp_receiver.ts";
export { buildTrees, formatTree } from "./trace_tree.ts";
