/**
 * A small in-process metric registry that renders the Prometheus text exposition format (0.0.4).
 * The same measurements also go to OpenTelemetry (metrics.ts); this registry is what a service's
 * `/metrics` endpoint serves, so a Prometheus scrape works without a collector in between.
 *
 * Names follow OpenTelemetry's Prometheus mapping: dots and other invalid characters become "_",
 * the unit becomes a suffix ("ms" -> "_milliseconds"), counters end in "_total".
 */

export type Labels = Readonly<Record<string, string | number | boolean>>;

export interface MetricOptions {
  description: string;
  /** UCUM-style unit as OpenTelemetry uses it: "ms", "s", "By", "1", "{request}". */
  unit?: string;
}

export interface HistogramOptions extends MetricOptions {
  /** Upper bounds of the buckets, strictly increasing (+Inf is implicit). */
  buckets: readonly number[];
}

const UNIT_SUFFIX: Record<string, string> = {
  ms: "milliseconds",
  s: "seconds",
  By: "bytes",
  "1": "ratio",
};

function sanitize(name: string): string {
  const s = name.replace(/[^a-zA-Z0-9_:]/g, "_");
  return /^[0-9]/.test(s) ? `_${s}` : s;
}

/** The Prometheus name of an OpenTelemetry metric (see the file comment). */
export function prometheusName(
  name: string,
  unit: string | undefined,
  type: "counter" | "histogram",
): string {
  let out = sanitize(name);
  const suffix = unit && !unit.startsWith("{") ? UNIT_SUFFIX[unit] ?? sanitize(unit) : "";
  // A unit "1" on a counter names a count, not a ratio.
  if (suffix && !(type === "counter" && unit === "1") && !out.endsWith(`_${suffix}`)) out += `_${suffix}`;
  if (type === "counter" && !out.endsWith("_total")) out += "_total";
  return out;
}

/** Label name as Prometheus accepts it ("rpc.method" -> "rpc_method"). */
export function prometheusLabel(name: string): string {
  const s = name.replace(/[^a-zA-Z0-9_]/g, "_");
  return /^[0-9]/.test(s) ? `_${s}` : s;
}

function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
}

function escapeHelp(text: string): string {
  return text.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

function formatNumber(v: number): string {
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  if (Number.isNaN(v)) return "NaN";
  return String(v);
}

interface Normalized {
  readonly pairs: [string, string][];
  readonly key: string;
}

/** Sorted [prometheus label, value] pairs; the key identifies the series. */
function computeNormalized(labels: Labels | undefined): Normalized {
  const pairs = Object.entries(labels ?? {})
    .map(([k, v]) => [prometheusLabel(k), String(v)] as [string, string])
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return { pairs, key: JSON.stringify(pairs) };
}

/**
 * normalize() results by the labels as given (names and values, length-prefixed so no two label
 * sets share a key). Every RPC records two or three series on each side; renaming, sorting and
 * JSON-encoding the labels each time was ~0.03-0.05 ms per call after model work (issue 21 hop
 * profile). Bounded: label sets past the cap are normalized each time, as before.
 */
const normalizedCache = new Map<string, Normalized>();
const NORMALIZED_CACHE_MAX = 4096;

function normalize(labels: Labels | undefined): Normalized {
  if (labels === undefined) return computeNormalized(undefined);
  let raw = "";
  for (const k of Object.keys(labels)) {
    const v = String(labels[k]);
    raw += `${k.length}:${k}${v.length}:${v}`;
  }
  let n = normalizedCache.get(raw);
  if (n === undefined) {
    n = computeNormalized(labels);
    if (normalizedCache.size < NORMALIZED_CACHE_MAX) normalizedCache.set(raw, n);
  }
  return n;
}

function labelText(pairs: readonly [string, string][], extra?: [string, string]): string {
  const all = extra ? [...pairs, extra] : pairs;
  if (all.length === 0) return "";
  return `{${all.map(([k, v]) => `${k}="${escapeLabelValue(v)}"`).join(",")}}`;
}

function checkValue(metric: string, value: number): void {
  if (!Number.isFinite(value)) throw new RangeError(`${metric}: value must be finite, got ${value}`);
}

export class PromCounter {
  readonly type = "counter" as const;
  readonly #series = new Map<string, { pairs: [string, string][]; value: number }>();

  constructor(readonly name: string, readonly options: MetricOptions) {}

  add(value = 1, labels?: Labels): void {
    checkValue(this.name, value);
    if (value < 0) throw new RangeError(`${this.name}: a counter only increases, got ${value}`);
    const { pairs, key } = normalize(labels);
    const s = this.#series.get(key);
    if (s) s.value += value;
    else this.#series.set(key, { pairs, value });
  }

  /** Current value of one series (0 when never incremented). */
  value(labels?: Labels): number {
    return this.#series.get(normalize(labels).key)?.value ?? 0;
  }

  render(): string {
    const name = prometheusName(this.name, this.options.unit, "counter");
    const lines = [`# HELP ${name} ${escapeHelp(this.options.description)}`, `# TYPE ${name} counter`];
    for (const s of this.#series.values()) {
      lines.push(`${name}${labelText(s.pairs)} ${formatNumber(s.value)}`);
    }
    return lines.join("\n");
  }
}

interface HistogramSeries {
  pairs: [string, string][];
  /** Per-bucket (non-cumulative) counts; the last slot is the +Inf overflow. */
  counts: number[];
  sum: number;
  count: number;
}

export class PromHistogram {
  readonly type = "histogram" as const;
  readonly buckets: readonly number[];
  readonly #series = new Map<string, HistogramSeries>();

  constructor(readonly name: string, readonly options: HistogramOptions) {
    const b = options.buckets;
    if (b.length === 0 || b.some((x, i) => !Number.isFinite(x) || (i > 0 && x <= b[i - 1]))) {
      throw new RangeError(`${name}: buckets must be finite and strictly increasing, got [${b.join(", ")}]`);
    }
    this.buckets = [...b];
  }

  record(value: number, labels?: Labels): void {
    checkValue(this.name, value);
    const { pairs, key } = normalize(labels);
    let s = this.#series.get(key);
    if (!s) {
      s = { pairs, counts: new Array(this.buckets.length + 1).fill(0), sum: 0, count: 0 };
      this.#series.set(key, s);
    }
    let i = 0;
    while (i < this.buckets.length && value > this.buckets[i]) i++;
    s.counts[i]++;
    s.sum += value;
    s.count++;
  }

  /** Count and sum of one series (zeros when never recorded). */
  snapshot(labels?: Labels): { count: number; sum: number } {
    const s = this.#series.get(normalize(labels).key);
    return { count: s?.count ?? 0, sum: s?.sum ?? 0 };
  }

  render(): string {
    const name = prometheusName(this.name, this.options.unit, "histogram");
    const lines = [`# HELP ${name} ${escapeHelp(this.options.description)}`, `# TYPE ${name} histogram`];
    for (const s of this.#series.values()) {
      let cumulative = 0;
      this.buckets.forEach((le, i) => {
        cumulative += s.counts[i];
        lines.push(`${name}_bucket${labelText(s.pairs, ["le", formatNumber(le)])} ${cumulative}`);
      });
      lines.push(`${name}_bucket${labelText(s.pairs, ["le", "+Inf"])} ${s.count}`);
      lines.push(`${name}_sum${labelText(s.pairs)} ${formatNumber(s.sum)}`);
      lines.push(`${name}_count${labelText(s.pairs)} ${s.count}`);
    }
    return lines.join("\n");
  }
}

export type PromMetric = PromCounter | PromHistogram;

/** Metrics by name; `counter` / `histogram` return the existing metric when the name is known. */
export class PromRegistry {
  readonly #metrics = new Map<string, PromMetric>();

  counter(name: string, options: MetricOptions): PromCounter {
    return this.#getOrCreate(name, "counter", () => new PromCounter(name, options));
  }

  histogram(name: string, options: HistogramOptions): PromHistogram {
    return this.#getOrCreate(name, "histogram", () => new PromHistogram(name, options));
  }

  get(name: string): PromMetric | undefined {
    return this.#metrics.get(name);
  }

  /** The whole registry in the text exposition format, metrics sorted by name. */
  render(): string {
    const names = [...this.#metrics.keys()].sort();
    const text = names.map((n) => this.#metrics.get(n)!.render()).join("\n");
    return text ? `${text}\n` : "";
  }

  #getOrCreate<M extends PromMetric>(name: string, type: M["type"], make: () => M): M {
    const existing = this.#metrics.get(name);
    if (existing) {
      if (existing.type !== type) {
        throw new Error(`metric ${name} is already registered as a ${existing.type}, not a ${type}`);
      }
      return existing as M;
    }
    const metric = make();
    this.#metrics.set(name, metric);
    return metric;
  }
}

/** Content type of the text exposition format. */
export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";
