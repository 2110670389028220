/**
 * Progress output of a training run. On a terminal: one progress line redrawn in place
 * (step/total, bar, reward, loss, h_l, ETA); elsewhere (CI logs, files, the container's stdout):
 * one plain `key=value` line per step, easy to grep. Messages (evaluations, checkpoints,
 * warnings) go above the bar without breaking it. The formatting functions are pure.
 */

/** What one progress line shows; missing numbers are left out. */
export interface ProgressSnapshot {
  step: number;
  total: number;
  loss?: number;
  h_w?: number;
  h_l?: number;
  accuracy?: number;
  mean_reward?: number;
  reward_margin?: number;
  skipped_ties?: number;
  step_seconds?: number;
  eta_seconds?: number;
}

/** 45 -> "45s", 185 -> "3m05s", 3720 -> "1h02m", 180000 -> "2d02h"; unknown -> "--". */
export function formatDuration(seconds: number | undefined): string {
  if (seconds === undefined || !Number.isFinite(seconds) || seconds < 0) return "--";
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  const pad = (n: number) => String(n).padStart(2, "0");
  if (s < 3600) return `${Math.floor(s / 60)}m${pad(s % 60)}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${pad(Math.floor((s % 3600) / 60))}m`;
  return `${Math.floor(s / 86400)}d${pad(Math.floor((s % 86400) / 3600))}h`;
}

/** A number in at most `digits` significant digits, without exponent noise for usual values. */
export function formatNumber(x: number | undefined, digits = 4): string {
  if (x === undefined) return "--";
  if (Number.isNaN(x)) return "nan";
  if (!Number.isFinite(x)) return x > 0 ? "inf" : "-inf";
  if (x === 0) return "0";
  const abs = Math.abs(x);
  if (abs >= 1e6 || abs < 1e-4) return x.toExponential(digits - 1).replace("e+", "e");
  return String(Number(x.toPrecision(digits)));
}

const EIGHTHS = ["", "\u258f", "\u258e", "\u258d", "\u258c", "\u258b", "\u258a", "\u2589"];

/** A bar of `width` cells filled to `fraction`, with eighth-cell resolution (Unicode blocks). */
export function renderBar(fraction: number, width: number): string {
  const f = Math.min(1, Math.max(0, Number.isFinite(fraction) ? fraction : 0));
  const eighths = Math.round(f * width * 8);
  const full = Math.floor(eighths / 8);
  const part = eighths % 8;
  const filled = "\u2588".repeat(full) + (part ? EIGHTHS[part] : "");
  return filled + " ".repeat(Math.max(0, width - full - (part ? 1 : 0)));
}

function fraction(s: ProgressSnapshot): number {
  return s.total > 0 ? s.step / s.total : 0;
}

/**
 * The terminal line: `step 12/100 |███▍     | 12% reward 5.81 loss 0.6931 h_l -0.0012 ETA 3m05s`,
 * shortened to `columns` (fields drop from the right, then the bar narrows).
 */
export function formatProgressLine(s: ProgressSnapshot, columns = 100): string {
  const width = String(s.total).length;
  const head = `step ${String(s.step).padStart(width)}/${s.total}`;
  const pct = `${String(Math.floor(fraction(s) * 100)).padStart(3)}%`;
  const fields: string[] = [];
  if (s.mean_reward !== undefined) fields.push(`reward ${formatNumber(s.mean_reward)}`);
  if (s.loss !== undefined) fields.push(`loss ${formatNumber(s.loss)}`);
  if (s.h_l !== undefined) fields.push(`h_l ${formatNumber(s.h_l, 3)}`);
  const eta = `ETA ${formatDuration(s.eta_seconds)}`;
  const compose = (barWidth: number, kept: string[]) =>
    [head, barWidth > 0 ? `|${renderBar(fraction(s), barWidth)}|` : "", pct, ...kept, eta].filter(Boolean)
      .join(" ");
  let kept = fields;
  const minBar = 10;
  while (kept.length > 0 && compose(minBar, kept).length > columns) kept = kept.slice(0, -1);
  const spare = columns - compose(0, kept).length - 3; // 2 bar edges + 1 space
  const barWidth = Math.min(30, spare);
  const line = compose(barWidth >= 5 ? barWidth : 0, kept);
  return line.length > columns ? line.slice(0, columns) : line;
}

/** The log line: `step=12/100 loss=0.6931 h_w=... h_l=... acc=0.5 reward=5.81 margin=0.12 ties=0 step_s=4.2 eta=3m05s`. */
export function formatLogLine(s: ProgressSnapshot): string {
  const parts = [`step=${s.step}/${s.total}`];
  const add = (key: string, v: number | undefined, digits = 4) => {
    if (v !== undefined) parts.push(`${key}=${formatNumber(v, digits)}`);
  };
  add("loss", s.loss);
  add("h_w", s.h_w, 3);
  add("h_l", s.h_l, 3);
  add("acc", s.accuracy, 3);
  add("reward", s.mean_reward);
  add("margin", s.reward_margin, 3);
  if (s.skipped_ties !== undefined) parts.push(`ties=${s.skipped_ties}`);
  add("step_s", s.step_seconds, 3);
  parts.push(`eta=${formatDuration(s.eta_seconds)}`);
  return parts.join(" ");
}

/**
 * Remaining-time estimate from step durations: an exponential moving average (weight `alpha` on
 * the newest step) times the steps left. The first step (compilation, warm-up) is not counted
 * when later ones exist.
 */
export class EtaEstimator {
  #average: number | undefined;
  #first: number | undefined;
  #count = 0;
  constructor(readonly alpha = 0.2) {}

  observe(stepSeconds: number): void {
    if (!Number.isFinite(stepSeconds) || stepSeconds < 0) return;
    this.#count++;
    if (this.#count === 1) {
      this.#first = stepSeconds;
      return;
    }
    this.#average = this.#average === undefined
      ? stepSeconds
      : this.alpha * stepSeconds + (1 - this.alpha) * this.#average;
  }

  /** Seconds for `remainingSteps` more steps, undefined before any step was observed. */
  eta(remainingSteps: number): number | undefined {
    const per = this.#average ?? this.#first;
    return per === undefined ? undefined : per * Math.max(0, remainingSteps);
  }
}

export type ProgressMode = "auto" | "bar" | "lines" | "none";

export interface ProgressReporterOptions {
  total: number;
  /** auto: bar on a terminal, lines otherwise. */
  mode?: ProgressMode;
  /** Where text goes (default stderr). */
  write?: (text: string) => void;
  /** Whether the output is a terminal (default: stderr's). */
  isTerminal?: boolean;
  /** Terminal width (default: the console's, else 100). */
  columns?: () => number;
}

/** Step metrics as the loop has them (a subset of metrics.ts StepMetrics). */
export type StepProgress = Omit<ProgressSnapshot, "total" | "eta_seconds">;

const CLEAR_LINE = "\r\x1b[2K";

function defaultColumns(): number {
  try {
    return Deno.consoleSize().columns;
  } catch {
    return 100;
  }
}

export class ProgressReporter {
  readonly mode: "bar" | "lines" | "none";
  readonly #total: number;
  readonly #write: (text: string) => void;
  readonly #columns: () => number;
  readonly #eta = new EtaEstimator();
  #line = "";

  constructor(options: ProgressReporterOptions) {
    this.#total = options.total;
    const encoder = new TextEncoder();
    this.#write = options.write ?? ((t) => Deno.stderr.writeSync(encoder.encode(t)));
    const terminal = options.isTerminal ?? Deno.stderr.isTerminal();
    const mode = options.mode ?? "auto";
    this.mode = mode === "auto" ? (terminal ? "bar" : "lines") : mode;
    this.#columns = options.columns ?? defaultColumns;
  }

  /** Reports one finished step. */
  step(s: StepProgress): ProgressSnapshot {
    if (s.step_seconds !== undefined) this.#eta.observe(s.step_seconds);
    const snapshot: ProgressSnapshot = {
      ...s,
      total: this.#total,
      eta_seconds: this.#eta.eta(this.#total - s.step),
    };
    if (this.mode === "bar") {
      this.#line = formatProgressLine(snapshot, Math.max(20, this.#columns() - 1));
      this.#write(CLEAR_LINE + this.#line);
    } else if (this.mode === "lines") {
      this.#write(formatLogLine(snapshot) + "\n");
    }
    return snapshot;
  }

  /** A message line (evaluation results, checkpoints); on a terminal the bar is redrawn below it. */
  message(text: string): void {
    if (this.mode === "none") return;
    if (this.mode === "bar") {
      this.#write(CLEAR_LINE + text + "\n" + this.#line);
    } else {
      this.#write(text + "\n");
    }
  }

  /** Ends the bar's line so later output starts on a fresh one. */
  finish(): void {
    if (this.mode === "bar" && this.#line) this.#write("\n");
    this.#line = "";
  }
}
