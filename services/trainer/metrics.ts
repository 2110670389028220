/**
 * Run metrics as JSON Lines (`metrics.jsonl` in the run folder): one record per training step and
 * one per evaluation (RDPO_SPEC.md section 6), appended as they happen and read back for the
 * report and for resuming. JSON has no NaN or Infinity: non-finite numbers are written as null
 * and read back as NaN.
 */
import type { UpdateMetrics } from "./epoch.ts";
import { InvalidArgumentError } from "../../lib/errors.ts";

/** One training step (one prompt batch of Algorithm 1). */
export interface StepMetrics {
  type: "step";
  step: number;
  /** ISO time when the step ended. */
  time: string;
  epoch?: number;
  /** Mean loss over the trained pairs. */
  loss: number;
  /** Mean h of winners and losers (the paper's Figure 1 / 3b curves). */
  h_w: number;
  h_l: number;
  /** Fraction of pairs with h_w > h_l. */
  accuracy: number;
  /** Mean step-reward gap (winner - loser) of the trained pairs. */
  reward_margin: number;
  /** Pairs trained and pairs skipped as ties (gap < min_margin). */
  pairs: number;
  skipped_ties: number;
  /** Mean reward of the final images of this step's trajectories. */
  mean_reward: number;
  step_seconds: number;
  /** Time spent on the wire (RPC time minus server-reported compute), ms. */
  wire_ms: number;
  /** RPCs the step made (retries included) and the encoded message bytes they sent and received. */
  rpcs?: number;
  wire_bytes_sent?: number;
  wire_bytes_received?: number;
  /** Of `rpcs`: how many went as Session stream messages and how many as their own unary RPC. */
  rpcs_by_stream?: number;
  rpcs_unary?: number;
  /**
   * The wire time per RPC name with its measured parts (services.ts RpcWireTotals: client encode /
   * decode, server decode + dispatch, the rest transport), ms and bytes summed over the step's calls.
   */
  wire_by_rpc?: Record<string, WireByRpc>;
  /** Wall time per phase in ms, e.g. {sample: 812, score: 95, train: 402}. */
  phases: Record<string, number>;
  grad_norm?: number;
  optimizer_step?: number;
  /** Data-parallel runs: gradient bytes on the wire this step (per-prompt in, reduced out). */
  gradient_bytes?: number;
  /** Under an epoch structure (epoch.ts): each optimizer step of the epoch this record closed. */
  updates?: UpdateMetrics[];
}

export interface WireByRpc {
  calls: number;
  wall_ms: number;
  server_ms: number;
  wire_ms: number;
  encode_ms: number;
  decode_ms: number;
  server_pre_ms: number;
  bytes_sent: number;
  bytes_received: number;
}

/** Mean/std of one scorer over an evaluation's samples. */
export interface ScoreStats {
  mean: number;
  std: number;
  count: number;
  /**
   * Per-sample scores in sample order (prompt-major, seed-matched across models), so two
   * evaluations can be compared pair by pair (`pairedDifference`).
   */
  values?: number[];
}

/** One evaluation: N samples per eval prompt scored by every eval scorer. */
export interface EvalMetrics {
  type: "eval";
  step: number;
  time: string;
  /** "base" (adapter off / untrained) or "policy". */
  model: string;
  rewards: Record<string, ScoreStats>;
  seconds?: number;
}

export type MetricsRecord = StepMetrics | EvalMetrics;

/** Mean and population std of a list (NaN for an empty list). */
export function scoreStats(values: readonly number[]): ScoreStats {
  const n = values.length;
  if (n === 0) return { mean: NaN, std: NaN, count: 0 };
  const mean = values.reduce((a, b) => a + b, 0) / n;
  const variance = values.reduce((a, b) => a + (b - mean) ** 2, 0) / n;
  return { mean, std: Math.sqrt(variance), count: n };
}

/**
 * Tuned minus base, sample by sample (same prompts, same seeds): the mean difference, its standard
 * error, and how many samples improved. Pairing removes the prompt/seed variance that dominates the
 * spread of either evaluation alone.
 */
export function pairedDifference(
  base: readonly number[],
  tuned: readonly number[],
): { mean: number; stdError: number; improved: number; count: number } {
  if (base.length !== tuned.length || base.length === 0) {
    throw new InvalidArgumentError(
      "values",
      `paired samples need two equal, non-empty lists (got ${base.length} and ${tuned.length})`,
    );
  }
  const d = tuned.map((t, i) => t - base[i]);
  const n = d.length;
  const mean = d.reduce((a, b) => a + b, 0) / n;
  const variance = n > 1 ? d.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1) : NaN;
  return { mean, stdError: Math.sqrt(variance / n), improved: d.filter((x) => x > 0).length, count: n };
}

/** One record as a JSON line (non-finite numbers -> null). */
export function encodeMetricsRecord(record: MetricsRecord): string {
  if (record.type !== "step" && record.type !== "eval") {
    throw new InvalidArgumentError(
      "type",
      `expected "step" or "eval", got ${JSON.stringify((record as { type: unknown }).type)}`,
    );
  }
  if (!Number.isSafeInteger(record.step) || record.step < 0) {
    throw new InvalidArgumentError("step", `expected a non-negative integer, got ${record.step}`);
  }
  return JSON.stringify(record, (_k, v) => (typeof v === "number" && !Number.isFinite(v) ? null : v));
}

function decodeNulls(value: unknown, key: string): unknown {
  // Only non-finite numbers are ever written as null: they come back as NaN.
  return value === null && key !== "" ? NaN : value;
}

/** Parses one line; the error names the line. */
export function decodeMetricsRecord(line: string, where = "metrics"): MetricsRecord {
  let value: unknown;
  try {
    value = JSON.parse(line, (k, v) => decodeNulls(v, k));
  } catch (e) {
    throw new InvalidArgumentError(where, `not valid JSON (${(e as Error).message})`);
  }
  const r = value as Partial<MetricsRecord> | null;
  if (
    r === null || typeof r !== "object" || (r.type !== "step" && r.type !== "eval") ||
    typeof r.step !== "number"
  ) {
    throw new InvalidArgumentError(where, `expected a {"type": "step"|"eval", "step": n, ...} record`);
  }
  return r as MetricsRecord;
}

/** Appends one record to a JSONL file (created if missing). */
export async function appendMetrics(path: string, record: MetricsRecord): Promise<void> {
  await Deno.writeTextFile(path, encodeMetricsRecord(record) + "\n", { append: true, create: true });
}

/**
 * Reads every record. A last line without its newline (the process died mid-write) is dropped;
 * a malformed line elsewhere is an error naming its number. A missing file reads as empty.
 */
export async function readMetrics(path: string): Promise<MetricsRecord[]> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
  return parseMetricsText(text, path);
}

/** parseMetricsText without the file: see readMetrics. */
export function parseMetricsText(text: string, source = "metrics"): MetricsRecord[] {
  const lines = text.split("\n");
  const complete = text.endsWith("\n");
  const out: MetricsRecord[] = [];
  lines.forEach((line, i) => {
    if (line.trim() === "") return;
    const last = i === lines.length - 1;
    if (last && !complete) {
      try {
        out.push(decodeMetricsRecord(line, `${source}:${i + 1}`));
      } catch { /* torn final write: ignore */ }
      return;
    }
    out.push(decodeMetricsRecord(line, `${source}:${i + 1}`));
  });
  return out;
}

/**
 * Drops records after `step` (and a torn last line), rewriting the file atomically: on resume from
 * a checkpoint at `step`, the steps after it will run again and must not be logged twice.
 */
export async function truncateMetrics(path: string, step: number): Promise<number> {
  const kept = (await readMetrics(path)).filter((r) => r.step <= step);
  const tmp = `${path}.tmp-${crypto.randomUUID().slice(0, 8)}`;
  await Deno.writeTextFile(tmp, kept.map((r) => encodeMetricsRecord(r) + "\n").join(""));
  await Deno.rename(tmp, path);
  return kept.length;
}

export function stepRecords(records: readonly MetricsRecord[]): StepMetrics[] {
  return records.filter((r): r is StepMetrics => r.type === "step");
}

export function evalRecords(records: readonly MetricsRecord[]): EvalMetrics[] {
  return records.filter((r): r is EvalMetrics => r.type === "eval");
}

/** The step record's fields that come from optimizer updates (not from sampling). */
const UPDATE_FIELDS = new Set(["loss", "h_w", "h_l", "accuracy", "grad_norm"]);

/**
 * A mid-epoch step of an epoch structure (`updates` present and empty) made no optimizer step, so
 * its loss / h / accuracy are placeholders (0), not measurements: series and summaries skip them.
 */
export function madeNoUpdate(r: StepMetrics): boolean {
  return r.updates !== undefined && r.updates.length === 0;
}

/** (step, value) points of one numeric field of the step records, non-finite values and
 * (for update fields) steps that made no update left out. */
export function stepSeries(
  records: readonly MetricsRecord[],
  field: "loss" | "h_w" | "h_l" | "accuracy" | "reward_margin" | "mean_reward" | "step_seconds" | "grad_norm",
): Array<[number, number]> {
  return stepRecords(records)
    .filter((r) => !(UPDATE_FIELDS.has(field) && madeNoUpdate(r)))
    .map((r) => [r.step, r[field] as number] as [number, number])
    .filter(([, v]) => typeof v === "number" && Number.isFinite(v));
}

/** (step, mean) points of one scorer across evaluations of one model. */
export function evalSeries(
  records: readonly MetricsRecord[],
  scorer: string,
  model = "policy",
): Array<[number, number]> {
  return evalRecords(records)
    .filter((r) => r.model === model && r.rewards[scorer] && Number.isFinite(r.rewards[scorer].mean))
    .map((r) => [r.step, r.rewards[scorer].mean]);
}

/** Moving average with a trailing window (for smoothing noisy curves). */
export function movingAverage(
  points: ReadonlyArray<[number, number]>,
  window: number,
): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  let sum = 0;
  for (let i = 0; i < points.length; i++) {
    sum += points[i][1];
    if (i >= window) sum -= points[i - window][1];
    out.push([points[i][0], sum / Math.min(i + 1, window)]);
  }
  return out;
}

/** Numbers for the report and the trainer state: where the run stands. */
export interface MetricsSummary {
  steps: number;
  last_step: number;
  /** Means over the last `window` steps. */
  window: number;
  loss: number;
  h_w: number;
  h_l: number;
  accuracy: number;
  reward_margin: number;
  mean_reward: number;
  skipped_ties_total: number;
  pairs_total: number;
  mean_step_seconds: number;
  /** Scorer -> mean of the first evaluation (the base model when evaluated at the start) and of the
   * last evaluation of the policy. */
  first_eval: Record<string, number>;
  last_eval: Record<string, number>;
}

/** Summary of the records (means over the last `window` step records). */
export function summarizeMetrics(records: readonly MetricsRecord[], window = 10): MetricsSummary {
  const steps = stepRecords(records);
  const tail = steps.slice(-window);
  const updated = steps.filter((r) => !madeNoUpdate(r)).slice(-window);
  const mean = (f: (r: StepMetrics) => number, rs = tail) => {
    const xs = rs.map(f).filter(Number.isFinite);
    return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN;
  };
  const evals = evalRecords(records);
  const means = (r: EvalMetrics | undefined) =>
    Object.fromEntries(Object.entries(r?.rewards ?? {}).map(([k, v]) => [k, v.mean]));
  const policyEvals = evals.filter((r) => r.model === "policy");
  return {
    steps: steps.length,
    last_step: steps.length ? steps[steps.length - 1].step : 0,
    window: tail.length,
    loss: mean((r) => r.loss, updated),
    h_w: mean((r) => r.h_w, updated),
    h_l: mean((r) => r.h_l, updated),
    accuracy: mean((r) => r.accuracy, updated),
    reward_margin: mean((r) => r.reward_margin),
    mean_reward: mean((r) => r.mean_reward),
    skipped_ties_total: steps.reduce((a, r) => a + r.skipped_ties, 0),
    pairs_total: steps.reduce((a, r) => a + r.pairs, 0),
    mean_step_seconds: steps.length ? steps.reduce((a, r) => a + r.step_seconds, 0) / steps.length : NaN,
    first_eval: means(evals[0]),
    last_eval: means(policyEvals[policyEvals.length - 1]),
  };
}
