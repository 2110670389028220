/**
 * Reward-service telemetry: one `reward.scorer.inference` span per scorer call (a dynamic batch),
 * the reward latency histograms per scorer and version, and the alias-swap counter.
 *
 * A batch may merge requests from several callers (services/reward/batcher.ts). Its span is a
 * child of the first request's context (the Score server span that queued it) and links to the
 * others, so each caller's trace reaches the inference that served it.
 */
import type { Attributes, Context, Link } from "@opentelemetry/api";
import {
  ATTR_ALIAS,
  ATTR_SCORER_BATCH_SIZE,
  ATTR_SCORER_KIND,
  ATTR_SCORER_NAME,
  ATTR_SCORER_QUEUE_WAIT_MS,
  ATTR_SCORER_REQUESTS,
  ATTR_SCORER_VERSION,
  SPAN_SCORER_INFERENCE,
} from "./attributes.ts";
import {
  rewardAliasSwaps,
  rewardBatchSize,
  rewardInferenceDuration,
  rewardQueueWait,
  rewardRequestDuration,
} from "./instruments.ts";
import { linkTo, withSpan } from "./tracing.ts";

/** Which scorer version a batcher serves (its metric labels and span attributes). */
export interface ScorerLabels {
  name: string;
  version: string;
  kind?: string;
}

export interface ScorerBatchInfo {
  /** Images in the scorer call. */
  images: number;
  /** Contexts of the requests merged into the batch, first arrival first (duplicates allowed). */
  parents: readonly Context[];
  /** Longest time a request of the batch waited in the queue, ms. */
  queueWaitMs: number;
}

function labelsOf(scorer: ScorerLabels): Record<string, string> {
  return { [ATTR_SCORER_NAME]: scorer.name, [ATTR_SCORER_VERSION]: scorer.version };
}

/**
 * Runs one scorer call in its span and, when `scorer` is known, records its inference time and
 * batch size.
 */
export async function traceScorerBatch<T>(
  scorer: ScorerLabels | undefined,
  batch: ScorerBatchInfo,
  fn: () => Promise<T>,
): Promise<T> {
  const parents = [...new Set(batch.parents)];
  const links = parents.slice(1).map((p) => linkTo(p)).filter((l): l is Link => l !== undefined);
  const attributes: Attributes = {
    [ATTR_SCORER_BATCH_SIZE]: batch.images,
    [ATTR_SCORER_REQUESTS]: parents.length,
    [ATTR_SCORER_QUEUE_WAIT_MS]: batch.queueWaitMs,
  };
  if (scorer) {
    Object.assign(attributes, labelsOf(scorer));
    if (scorer.kind) attributes[ATTR_SCORER_KIND] = scorer.kind;
  }
  const started = performance.now();
  const result = await withSpan(SPAN_SCORER_INFERENCE, attributes, fn, { parent: parents[0], links });
  if (scorer) {
    rewardInferenceDuration.record(performance.now() - started, labelsOf(scorer));
    rewardBatchSize.record(batch.images, labelsOf(scorer));
  }
  return result;
}

/** One request's reward latency in the batcher: queue wait and total (queue + inference), ms. */
export function recordScoreRequest(scorer: ScorerLabels | undefined, queueMs: number, totalMs: number): void {
  if (!scorer) return;
  rewardQueueWait.record(queueMs, labelsOf(scorer));
  rewardRequestDuration.record(totalMs, labelsOf(scorer));
}

/** An alias now points at `target` (a load with an alias, or SetAlias). */
export function recordAliasSwap(alias: string, target: ScorerLabels): void {
  rewardAliasSwaps.add(1, { [ATTR_ALIAS]: alias, ...labelsOf(target) });
}
