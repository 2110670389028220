/**
 * The evaluation table, like the paper's Table 8 ("reward generalization"): one row per model
 * (base, tuned), one column per scorer, each cell the mean reward of N samples per eval prompt
 * (RDPO_SPEC.md section 6). As Markdown (for the README/report) and CSV (with std and counts).
 */
import type { MetricsRecord, ScoreStats } from "../metrics.ts";
import { evalRecords } from "../metrics.ts";

export interface EvalTableRow {
  model: string;
  /** Training step the evaluation was taken at. */
  step: number;
  values: Record<string, ScoreStats | undefined>;
}

export interface EvalTable {
  scorers: string[];
  rows: EvalTableRow[];
}

/**
 * Base row = the first evaluation (taken before training, model "base", when eval.at_start is
 * on), tuned row = the last evaluation of the policy. Scorers in first-seen order.
 */
export function evalTableFromMetrics(
  records: readonly MetricsRecord[],
  labels: { base?: string; tuned?: string } = {},
): EvalTable {
  const evals = evalRecords(records);
  const scorers = [...new Set(evals.flatMap((r) => Object.keys(r.rewards)))];
  const rows: EvalTableRow[] = [];
  if (evals.length === 0) return { scorers, rows };
  const first = evals[0];
  const lastPolicy = [...evals].reverse().find((r) => r.model === "policy");
  rows.push({
    model: labels.base ?? (first.model === "base" ? "base" : `${first.model} (step ${first.step})`),
    step: first.step,
    values: first.rewards,
  });
  if (lastPolicy && lastPolicy !== first) {
    rows.push({ model: labels.tuned ?? "tuned", step: lastPolicy.step, values: lastPolicy.rewards });
  }
  return { scorers, rows };
}

function cell(v: ScoreStats | undefined, digits: number): string {
  return v && Number.isFinite(v.mean) ? v.mean.toFixed(digits) : "-";
}

/** Markdown table of means; with two rows, a last row of the change (tuned - base). */
export function evalTableMarkdown(table: EvalTable, digits = 3): string {
  const escape = (s: string) => s.replace(/\|/g, "\\|");
  const lines = [
    `| model | step | ${table.scorers.map(escape).join(" | ")} |`,
    `|---|---:|${table.scorers.map(() => "---:").join("|")}|`,
  ];
  for (const row of table.rows) {
    lines.push(
      `| ${escape(row.model)} | ${row.step} | ${
        table.scorers.map((s) => cell(row.values[s], digits)).join(" | ")
      } |`,
    );
  }
  if (table.rows.length === 2) {
    const [a, b] = table.rows;
    const change = table.scorers.map((s) => {
      const x = a.values[s]?.mean;
      const y = b.values[s]?.mean;
      if (x === undefined || y === undefined || !Number.isFinite(x) || !Number.isFinite(y)) return "-";
      const d = y - x;
      return `${d >= 0 ? "+" : ""}${d.toFixed(digits)}`;
    });
    lines.push(`| change |  | ${change.join(" | ")} |`);
  }
  return lines.join("\n") + "\n";
}

/** RFC 4180 field quoting. */
export function csvField(value: string | number): string {
  const s = typeof value === "number" ? (Number.isFinite(value) ? String(value) : "") : value;
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** CSV: model, step, then <scorer>_mean, <scorer>_std, <scorer>_n per scorer. */
export function evalTableCsv(table: EvalTable): string {
  const header = ["model", "step", ...table.scorers.flatMap((s) => [`${s}_mean`, `${s}_std`, `${s}_n`])];
  const lines = [header.map(csvField).join(",")];
  for (const row of table.rows) {
    const fields: Array<string | number> = [row.model, row.step];
    for (const s of table.scorers) {
      const v = row.values[s];
      fields.push(v?.mean ?? NaN, v?.std ?? NaN, v?.count ?? NaN);
    }
    lines.push(fields.map(csvField).join(","));
  }
  return lines.join("\r\n") + "\r\n";
}
