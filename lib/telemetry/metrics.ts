/**
 * Instruments that record every measurement twice: into the OpenTelemetry meter of the global
 * provider (exported over OTLP when the process runs with OTEL_DENO=true; a no-op otherwise) and
 * into the process's Prometheus registry (served on /metrics, metrics_server.ts). One call site,
 * two exports, identical numbers.
 */
import {
  type Attributes,
  type Counter as OtelCounter,
  type Histogram as OtelHistogram,
  metrics,
} from "@opentelemetry/api";
import { SCOPE_NAME } from "./attributes.ts";
import {
  type Labels,
  type MetricOptions,
  type PromCounter,
  type PromHistogram,
  PromRegistry,
} from "./prometheus.ts";

/** The registry every instrument of this process records into (what /metrics serves). */
export const defaultRegistry = new PromRegistry();

/**
 * Bucket bounds for durations in milliseconds: from a fast RPC (1 ms) to a full SD1.5 training
 * step (minutes). Also given to OpenTelemetry as advice, so both exports bucket alike.
 */
export const DURATION_BUCKETS_MS: readonly number[] = [
  1,
  2.5,
  5,
  10,
  25,
  50,
  100,
  250,
  500,
  1000,
  2500,
  5000,
  10_000,
  30_000,
  60_000,
  120_000,
  300_000,
];

/** Bucket bounds for batch sizes (images per scorer call). */
export const BATCH_SIZE_BUCKETS: readonly number[] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512];

export interface Counter {
  add(value?: number, labels?: Labels): void;
}

export interface Histogram {
  record(value: number, labels?: Labels): void;
}

function meter() {
  return metrics.getMeter(SCOPE_NAME);
}

class DualCounter implements Counter {
  #otel: OtelCounter | undefined;
  constructor(readonly prom: PromCounter, readonly options: MetricOptions) {}

  add(value = 1, labels?: Labels): void {
    this.prom.add(value, labels);
    // Created on first use: the global meter provider is installed before user code runs.
    this.#otel ??= meter().createCounter(this.prom.name, {
      description: this.options.description,
      unit: this.options.unit,
    });
    this.#otel.add(value, labels as Attributes | undefined);
  }
}

class DualHistogram implements Histogram {
  #otel: OtelHistogram | undefined;
  constructor(readonly prom: PromHistogram, readonly options: MetricOptions) {}

  record(value: number, labels?: Labels): void {
    this.prom.record(value, labels);
    this.#otel ??= meter().createHistogram(this.prom.name, {
      description: this.options.description,
      unit: this.options.unit,
      advice: { explicitBucketBoundaries: [...this.prom.buckets] },
    });
    this.#otel.record(value, labels as Attributes | undefined);
  }
}

/** A counter exported to OpenTelemetry and to `registry` (default: the process registry). */
export function createCounter(name: string, options: MetricOptions, registry = defaultRegistry): Counter {
  return new DualCounter(registry.counter(name, options), options);
}

/** A histogram exported to OpenTelemetry and to `registry`; `buckets` default to durations in ms. */
export function createHistogram(
  name: string,
  options: MetricOptions & { buckets?: readonly number[] },
  registry = defaultRegistry,
): Histogram {
  const prom = registry.histogram(name, { ...options, buckets: options.buckets ?? DURATION_BUCKETS_MS });
  return new DualHistogram(prom, options);
}
