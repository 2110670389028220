/**
 * Dynamic batching for one scorer version (the Triton dynamic-batcher model): concurrent score
 * calls wait in a FIFO queue and are merged into one `Scorer.score` call of up to `maxBatch`
 * images. A batch leaves the queue as soon as `maxBatch` images are waiting, or when the oldest
 * waiting request has waited `maxQueueDelayMs`, whichever comes first; while the scorer is busy
 * (one batch in flight per version, the "instance count" of Triton, default 1) requests keep
 * merging, so under load batches fill up without any added delay.
 *
 * Rules (documented here because callers see them in ScoreResponse):
 * - A request is never split across callers' results: the scores are handed back per caller in
 *   request order.
 * - A request with more images than `maxBatch` is split into chunks of at most `maxBatch` images,
 *   queued back to back (so no single inference ever exceeds `maxBatch`, which bounds memory);
 *   its scores are reassembled in order. Its `batchSize` is the largest batch that carried it.
 * - `inferenceMs` is the time spent in the scorer by the batches carrying the request's images;
 *   `queueMs` is the rest of its time in the batcher (waiting), so queueMs + inferenceMs is the
 *   time from submit to result.
 * - Batches are formed from whole chunks in arrival order (a chunk never jumps the queue, so no
 *   request starves).
 * - A failing batch fails only its callers. When the failing batch merged several callers, each of
 *   them is retried alone once, so one poisoned input (e.g. an image a scorer rejects) fails only
 *   its own request; a scorer that fails for everyone fails each caller with its own error.
 * - A request whose AbortSignal fires while it is still queued leaves the queue and rejects with
 *   the signal's reason; once its batch runs it completes (its result is dropped by the caller).
 */
import type { Context } from "@opentelemetry/api";
import { InvalidArgumentError, UnavailableError } from "../../lib/errors.ts";
import { recordScoreRequest, type ScorerLabels, traceScorerBatch } from "../../lib/telemetry/reward.ts";
import { activeContext } from "../../lib/telemetry/tracing.ts";
import type { RgbImage } from "./scorer.ts";

export interface BatchingConfig {
  /** Most images merged into one scorer call (>= 1). */
  maxBatch: number;
  /** How long the oldest queued request may wait for others to join, in ms (>= 0). */
  maxQueueDelayMs: number;
}

/** Upper bounds on what a LoadScorer request may ask for (bigger values are configuration bugs). */
export const MAX_BATCH_LIMIT = 4096;
export const MAX_QUEUE_DELAY_LIMIT_MS = 60_000;

/**
 * The batching config of a load: zero/unset fields take the service defaults (proto3 sends 0 for
 * "unset"); out-of-range values are InvalidArgumentError naming `field`.
 */
export function resolveBatchingConfig(
  requested: Partial<BatchingConfig> | undefined,
  defaults: BatchingConfig,
  field = "batching",
): BatchingConfig {
  const maxBatch = requested?.maxBatch || defaults.maxBatch;
  const maxQueueDelayMs = requested?.maxQueueDelayMs || defaults.maxQueueDelayMs;
  if (!Number.isInteger(maxBatch) || maxBatch < 1 || maxBatch > MAX_BATCH_LIMIT) {
    throw new InvalidArgumentError(
      `${field}.max_batch`,
      `must be an integer in [1, ${MAX_BATCH_LIMIT}], got ${maxBatch}`,
    );
  }
  if (
    !Number.isFinite(maxQueueDelayMs) || maxQueueDelayMs < 0 || maxQueueDelayMs > MAX_QUEUE_DELAY_LIMIT_MS
  ) {
    throw new InvalidArgumentError(
      `${field}.max_queue_delay_ms`,
      `must be in [0, ${MAX_QUEUE_DELAY_LIMIT_MS}] ms, got ${maxQueueDelayMs}`,
    );
  }
  return { maxBatch, maxQueueDelayMs };
}

/** What one submitted request gets back. */
export interface BatchResult {
  /** One score per submitted image, in order. */
  scores: Float64Array;
  queueMs: number;
  inferenceMs: number;
  /** Images in the (largest) scorer call that carried this request. */
  batchSize: number;
}

/** The scorer call a batch turns into (Scorer.score bound to one version). */
export type BatchRunner = (images: RgbImage[], prompts: string[]) => Promise<Float64Array>;

export interface BatcherOptions {
  /** Batches running at once (scorer "instances"); default 1. */
  maxInflightBatches?: number;
  /** Clock in ms (tests may inject one); default performance.now. */
  now?: () => number;
  /** The scorer version served: labels of the inference span and the reward latency metrics. */
  telemetry?: ScorerLabels;
}

/** Observed batch sizes, for benchmarks and tests (the scorer sees exactly these). */
export interface BatcherCounters {
  batches: number;
  images: number;
  largestBatch: number;
}

interface Pending {
  readonly scores: Float64Array;
  readonly enqueuedAt: number;
  /** Trace context of the submitter: the inference span's parent (lib/telemetry/reward.ts). */
  readonly trace: Context;
  remainingChunks: number;
  inferenceMs: number;
  batchSize: number;
  settled: boolean;
  resolve(result: BatchResult): void;
  reject(error: unknown): void;
  detach(): void;
}

interface Chunk {
  readonly owner: Pending;
  readonly offset: number;
  readonly images: RgbImage[];
  readonly prompts: string[];
}

export class DynamicBatcher {
  readonly config: Readonly<BatchingConfig>;
  readonly #run: BatchRunner;
  readonly #maxInflight: number;
  readonly #now: () => number;
  readonly #telemetry: ScorerLabels | undefined;
  readonly #queue: Chunk[] = [];
  #queuedImages = 0;
  #running = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #closedWith: Error | undefined;
  readonly #counters: BatcherCounters = { batches: 0, images: 0, largestBatch: 0 };

  constructor(run: BatchRunner, config: BatchingConfig, options: BatcherOptions = {}) {
    this.config = resolveBatchingConfig(config, config);
    this.#run = run;
    this.#maxInflight = Math.max(1, options.maxInflightBatches ?? 1);
    this.#now = options.now ?? (() => performance.now());
    this.#telemetry = options.telemetry;
  }

  /** Images waiting in the queue. */
  get queuedImages(): number {
    return this.#queuedImages;
  }

  /** Batches currently in the scorer. */
  get runningBatches(): number {
    return this.#running;
  }

  /** Counts of the batches run so far. */
  get counters(): Readonly<BatcherCounters> {
    return { ...this.#counters };
  }

  /**
   * Queues `images` (with `prompts`: empty, or one per image) and resolves with their scores once
   * the batches carrying them ran.
   */
  submit(images: RgbImage[], prompts: string[], signal?: AbortSignal): Promise<BatchResult> {
    if (this.#closedWith) return Promise.reject(this.#closedWith);
    if (images.length === 0) {
      return Promise.resolve({ scores: new Float64Array(0), queueMs: 0, inferenceMs: 0, batchSize: 0 });
    }
    if (prompts.length !== 0 && prompts.length !== images.length) {
      return Promise.reject(
        new InvalidArgumentError("prompts", `expected 0 or ${images.length} prompts, got ${prompts.length}`),
      );
    }
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise<BatchResult>((resolve, reject) => {
      const { maxBatch } = this.config;
      const chunkCount = Math.ceil(images.length / maxBatch);
      const owner: Pending = {
        scores: new Float64Array(images.length),
        enqueuedAt: this.#now(),
        trace: activeContext(),
        remainingChunks: chunkCount,
        inferenceMs: 0,
        batchSize: 0,
        settled: false,
        resolve,
        reject,
        detach: () => {},
      };
      if (signal) {
        const onAbort = () => this.#cancel(owner, signal.reason);
        signal.addEventListener("abort", onAbort, { once: true });
        owner.detach = () => signal.removeEventListener("abort", onAbort);
      }
      for (let c = 0; c < chunkCount; c++) {
        const offset = c * maxBatch;
        const end = Math.min(images.length, offset + maxBatch);
        this.#queue.push({
          owner,
          offset,
          images: images.slice(offset, end),
          prompts: prompts.length === 0 ? [] : prompts.slice(offset, end),
        });
        this.#queuedImages += end - offset;
      }
      this.#schedule();
    });
  }

  /**
   * Rejects every queued request with `reason` and refuses new ones. Batches already running
   * finish normally.
   */
  close(reason: Error = new UnavailableError("the scorer was unloaded")): void {
    if (this.#closedWith) return;
    this.#closedWith = reason;
    this.#clearTimer();
    const queued = this.#queue.splice(0);
    this.#queuedImages = 0;
    for (const chunk of queued) this.#fail(chunk.owner, reason);
  }

  #schedule(): void {
    while (this.#running < this.#maxInflight && this.#queue.length > 0) {
      const waited = this.#now() - this.#queue[0].owner.enqueuedAt;
      const full = this.#queuedImages >= this.config.maxBatch;
      if (!full && waited < this.config.maxQueueDelayMs) {
        if (this.#timer === undefined) {
          this.#timer = setTimeout(() => {
            this.#timer = undefined;
            this.#schedule();
          }, Math.max(0, this.config.maxQueueDelayMs - waited));
        }
        return;
      }
      this.#clearTimer();
      this.#dispatch(this.#takeBatch());
    }
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** Whole chunks from the head of the queue, up to maxBatch images (the first always fits). */
  #takeBatch(): Chunk[] {
    const batch: Chunk[] = [];
    let size = 0;
    while (this.#queue.length > 0) {
      const next = this.#queue[0];
      if (size > 0 && size + next.images.length > this.config.maxBatch) break;
      this.#queue.shift();
      size += next.images.length;
      batch.push(next);
    }
    this.#queuedImages -= size;
    return batch;
  }

  #dispatch(batch: Chunk[]): void {
    this.#running++;
    this.#runBatch(batch).finally(() => {
      this.#running--;
      this.#schedule();
    });
  }

  async #runBatch(batch: Chunk[]): Promise<void> {
    try {
      await this.#runOnce(batch);
    } catch (error) {
      const owners = new Set(batch.map((c) => c.owner));
      if (owners.size === 1) {
        this.#fail(batch[0].owner, error);
        return;
      }
      // Isolate the failure: each caller's chunks alone, so only the callers whose inputs fail
      // see an error.
      for (const owner of owners) {
        if (owner.settled) continue;
        try {
          await this.#runOnce(batch.filter((c) => c.owner === owner));
        } catch (ownError) {
          this.#fail(owner, ownError);
        }
      }
    }
  }

  /** One scorer call over `batch`; on success hands each chunk its scores. */
  async #runOnce(batch: Chunk[]): Promise<void> {
    const images: RgbImage[] = [];
    const prompts: string[] = [];
    for (const chunk of batch) {
      images.push(...chunk.images);
      prompts.push(...chunk.prompts);
    }
    const started = this.#now();
    const raw = await traceScorerBatch(this.#telemetry, {
      images: images.length,
      parents: batch.map((c) => c.owner.trace),
      queueWaitMs: Math.max(0, started - Math.min(...batch.map((c) => c.owner.enqueuedAt))),
    }, () => this.#run(images, prompts));
    const inferenceMs = this.#now() - started;
    if (raw?.length !== images.length) {
      throw new Error(`the scorer returned ${raw?.length} scores for a batch of ${images.length} images`);
    }
    this.#counters.batches++;
    this.#counters.images += images.length;
    this.#counters.largestBatch = Math.max(this.#counters.largestBatch, images.length);
    let at = 0;
    for (const chunk of batch) {
      const owner = chunk.owner;
      const n = chunk.images.length;
      if (!owner.settled) {
        for (let i = 0; i < n; i++) owner.scores[chunk.offset + i] = raw[at + i];
        owner.inferenceMs += inferenceMs;
        owner.batchSize = Math.max(owner.batchSize, images.length);
        owner.remainingChunks--;
        if (owner.remainingChunks === 0) this.#succeed(owner);
      }
      at += n;
    }
  }

  #succeed(owner: Pending): void {
    owner.settled = true;
    owner.detach();
    const total = this.#now() - owner.enqueuedAt;
    recordScoreRequest(this.#telemetry, Math.max(0, total - owner.inferenceMs), total);
    owner.resolve({
      scores: owner.scores,
      queueMs: Math.max(0, total - owner.inferenceMs),
      inferenceMs: owner.inferenceMs,
      batchSize: owner.batchSize,
    });
  }

  #fail(owner: Pending, error: unknown): void {
    if (owner.settled) return;
    owner.settled = true;
    owner.detach();
    this.#dropQueued(owner);
    owner.reject(error);
  }

  #cancel(owner: Pending, reason: unknown): void {
    // Only requests still entirely queued can leave; once a chunk runs, the request completes.
    const queuedChunks = this.#queue.filter((c) => c.owner === owner).length;
    if (owner.settled || queuedChunks < owner.remainingChunks) return;
    this.#fail(owner, reason);
  }

  /** Removes the owner's chunks that are still queued. */
  #dropQueued(owner: Pending): void {
    for (let i = this.#queue.length - 1; i >= 0; i--) {
      if (this.#queue[i].owner === owner) {
        this.#queuedImages -= this.#queue[i].images.length;
        this.#queue.splice(i, 1);
      }
    }
  }
}
