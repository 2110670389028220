/**
 * Prompt sets: reading prompt files, the seeded train/eval split and a batching iterator that can
 * be resumed from a checkpointed cursor and then yields exactly the batches an uninterrupted run
 * would have.
 *
 * File formats:
 * - `lines`: one prompt per line; blank lines and lines starting with `#` are skipped, surrounding
 *   whitespace is trimmed.
 * - `jsonl`: one JSON object per non-blank line with a string field `prompt` (other fields are
 *   ignored, so metadata can ride along).
 */
import { InvalidArgumentError } from "../../lib/errors.ts";
import { isAbsolute, resolve } from "node:path";
import { seededRandom, shuffled } from "./random.ts";

export type PromptFileFormat = "lines" | "jsonl";

/** `auto` picks jsonl for `.jsonl` / `.ndjson` files and lines otherwise. */
export function detectPromptFormat(
  path: string,
  format: "auto" | PromptFileFormat = "auto",
): PromptFileFormat {
  if (format !== "auto") return format;
  return /\.(jsonl|ndjson)$/i.test(path) ? "jsonl" : "lines";
}

/** Parses prompt text; errors name `source:line`. */
export function parsePrompts(text: string, format: PromptFileFormat, source = "prompts"): string[] {
  const out: string[] = [];
  const lines = text.split(/\r?\n/);
  lines.forEach((rawLine, i) => {
    const line = rawLine.trim();
    const where = `${source}:${i + 1}`;
    if (format === "lines") {
      if (line === "" || line.startsWith("#")) return;
      out.push(line);
      return;
    }
    if (line === "") return;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (e) {
      throw new InvalidArgumentError(where, `not valid JSON (${(e as Error).message})`);
    }
    const prompt = (value as { prompt?: unknown } | null)?.prompt;
    if (typeof value !== "object" || value === null || Array.isArray(value) || typeof prompt !== "string") {
      throw new InvalidArgumentError(
        where,
        `expected an object with a string field "prompt", got ${line.slice(0, 80)}`,
      );
    }
    if (prompt.trim() === "") throw new InvalidArgumentError(`${where}.prompt`, "is empty");
    out.push(prompt);
  });
  if (out.length === 0) throw new InvalidArgumentError(source, "holds no prompts");
  return out;
}

/** Reads a prompt file (relative paths resolve against `baseDir`, default the working folder). */
export async function loadPromptFile(
  path: string,
  format: "auto" | PromptFileFormat = "auto",
  baseDir?: string,
): Promise<string[]> {
  const full = isAbsolute(path) ? path : resolve(baseDir ?? Deno.cwd(), path);
  let text: string;
  try {
    text = await Deno.readTextFile(full);
  } catch (e) {
    throw new InvalidArgumentError("prompts.file", `cannot read ${full}: ${(e as Error).message}`);
  }
  return parsePrompts(text, detectPromptFormat(path, format), path);
}

export interface PromptSplit {
  train: string[];
  eval: string[];
}

/**
 * Deterministic split: the prompts are shuffled with `seed` (stream 1, apart from the batch
 * order's streams) and the first round(n * evalFraction) go to eval, at least 1 and at most n - 1
 * when the fraction is > 0. Both halves keep the file's order. A fraction of 0 evaluates on the
 * training prompts (the paper trains and evaluates on the same 45 animals).
 */
export function splitPrompts(prompts: readonly string[], evalFraction: number, seed: number): PromptSplit {
  if (!(evalFraction >= 0 && evalFraction < 1)) {
    throw new InvalidArgumentError("prompts.eval_fraction", `must be >= 0 and < 1, got ${evalFraction}`);
  }
  if (evalFraction === 0) return { train: [...prompts], eval: [...prompts] };
  if (prompts.length < 2) {
    throw new InvalidArgumentError(
      "prompts.eval_fraction",
      `cannot split ${prompts.length} prompt(s) in two`,
    );
  }
  const n = prompts.length;
  const nEval = Math.min(n - 1, Math.max(1, Math.round(n * evalFraction)));
  const order = shuffled(prompts.map((_, i) => i), seededRandom(seed, 1));
  const evalSet = new Set(order.slice(0, nEval));
  return {
    train: prompts.filter((_, i) => !evalSet.has(i)),
    eval: prompts.filter((_, i) => evalSet.has(i)),
  };
}

/** The `prompts` section of the run config (config.ts). */
export interface PromptsSettings {
  file: string;
  format: "auto" | PromptFileFormat;
  eval_file: string | null;
  eval_fraction: number;
  shuffle_seed: number;
}

/** Loads the train and eval prompt sets a run config describes. */
export async function loadPromptSets(settings: PromptsSettings, baseDir?: string): Promise<PromptSplit> {
  const all = await loadPromptFile(settings.file, settings.format, baseDir);
  if (settings.eval_file !== null) {
    return { train: all, eval: await loadPromptFile(settings.eval_file, settings.format, baseDir) };
  }
  return splitPrompts(all, settings.eval_fraction, settings.shuffle_seed);
}

/** Position in the batch sequence: `index` prompts of epoch `epoch` have been handed out. */
export interface PromptCursor {
  epoch: number;
  index: number;
}

export interface PromptBatch {
  prompts: string[];
  /** Indices into the prompt list, in batch order. */
  indices: number[];
  /** Cursor before this batch (where a run resumed "at this batch" starts). */
  start: PromptCursor;
  /** Cursor after this batch (what a checkpoint taken after this batch stores). */
  next: PromptCursor;
}

export interface PromptBatcherOptions {
  batchSize: number;
  /** Shuffle each epoch (stream 2 + epoch of `seed`); false keeps file order. */
  shuffle?: boolean;
  seed?: number;
  /** Resume from here (default: the start). */
  cursor?: PromptCursor;
  /**
   * Batches never straddle epochs; with dropLast the short tail of an epoch is skipped, otherwise
   * it is yielded as a smaller batch.
   */
  dropLast?: boolean;
}

/**
 * Endless sequence of prompt batches, epoch after epoch, each epoch a fresh seeded permutation.
 * The permutation of epoch e depends only on (seed, e), so a batcher built with a saved cursor
 * continues exactly where the saved one was.
 */
export class PromptBatcher {
  readonly #prompts: readonly string[];
  readonly #batchSize: number;
  readonly #shuffle: boolean;
  readonly #seed: number;
  readonly #dropLast: boolean;
  #cursor: PromptCursor;
  #order: number[] = [];
  #orderEpoch = -1;

  constructor(prompts: readonly string[], options: PromptBatcherOptions) {
    if (prompts.length === 0) throw new InvalidArgumentError("prompts", "no prompts to batch");
    if (!Number.isSafeInteger(options.batchSize) || options.batchSize < 1) {
      throw new InvalidArgumentError("batchSize", `must be an integer >= 1, got ${options.batchSize}`);
    }
    if (options.dropLast && options.batchSize > prompts.length) {
      throw new InvalidArgumentError(
        "batchSize",
        `${options.batchSize} is larger than the ${prompts.length} prompts: with dropLast no batch would be full`,
      );
    }
    this.#prompts = prompts;
    this.#batchSize = options.batchSize;
    this.#shuffle = options.shuffle ?? true;
    this.#seed = options.seed ?? 0;
    this.#dropLast = options.dropLast ?? false;
    const c = options.cursor ?? { epoch: 0, index: 0 };
    if (!Number.isSafeInteger(c.epoch) || c.epoch < 0 || !Number.isSafeInteger(c.index) || c.index < 0) {
      throw new InvalidArgumentError("cursor", `expected non-negative integers, got ${JSON.stringify(c)}`);
    }
    if (c.index > prompts.length) {
      throw new InvalidArgumentError(
        "cursor.index",
        `${c.index} is past the ${prompts.length} prompts of an epoch`,
      );
    }
    this.#cursor = { ...c };
  }

  /** Where the next batch starts. */
  get cursor(): PromptCursor {
    return { ...this.#cursor };
  }

  /** Batches per epoch. */
  get batchesPerEpoch(): number {
    const n = this.#prompts.length;
    return this.#dropLast ? Math.floor(n / this.#batchSize) : Math.ceil(n / this.#batchSize);
  }

  /** The prompt order of one epoch (indices into the prompt list). */
  epochOrder(epoch: number): number[] {
    if (epoch !== this.#orderEpoch) {
      const identity = this.#prompts.map((_, i) => i);
      this.#order = this.#shuffle ? shuffled(identity, seededRandom(this.#seed, 2 + epoch)) : identity;
      this.#orderEpoch = epoch;
    }
    return this.#order;
  }

  /** The next batch; advances the cursor. */
  next(): PromptBatch {
    const n = this.#prompts.length;
    let { epoch, index } = this.#cursor;
    const remaining = n - index;
    if (remaining === 0 || (this.#dropLast && remaining < this.#batchSize)) {
      epoch += 1;
      index = 0;
    }
    const start = { epoch, index };
    const order = this.epochOrder(epoch);
    const indices = order.slice(index, Math.min(n, index + this.#batchSize));
    this.#cursor = { epoch, index: index + indices.length };
    return { prompts: indices.map((i) => this.#prompts[i]), indices, start, next: this.cursor };
  }

  /** The next `count` batches. */
  take(count: number): PromptBatch[] {
    return Array.from({ length: count }, () => this.next());
  }
}
