/**
 * Trainer-side telemetry of one RDPO training step (RDPO_SPEC.md section 6 lists what a step
 * reports): a `rdpo.step` span that the step's RPCs run under, one child span per timed phase call
 * (`rdpo.sample`, `rdpo.score`, `rdpo.train`) carrying the inference-step index, an event per
 * fine-tune timestep, and the step/phase duration histograms.
 */
import { type Attributes, ROOT_CONTEXT, trace } from "@opentelemetry/api";
import {
  ATTR_RDPO_FINETUNE,
  ATTR_RDPO_METHOD,
  ATTR_RDPO_PAIRS,
  ATTR_RDPO_PHASE,
  ATTR_RDPO_PROMPT_BATCH,
  ATTR_RDPO_REWARD_MARGIN,
  ATTR_RDPO_SKIPPED_TIES,
  ATTR_RDPO_STEP,
  ATTR_RDPO_STEP_INDEX,
  EVENT_RDPO_FINETUNE_STEP,
  SPAN_RDPO_PHASE_PREFIX,
  SPAN_RDPO_STEP,
} from "./attributes.ts";
import {
  trainerPairs,
  trainerPhaseDuration,
  trainerSkippedTies,
  trainerStepDuration,
} from "./instruments.ts";
import { activeContext, failSpan, inSpan, linkTo, type Span, startSpan, withSpan } from "./tracing.ts";

export interface StepSummary {
  pairs: number;
  skippedTies: number;
  /** Mean reward margin of the pairs (0 without pairs). */
  rewardMargin: number;
  /** Milliseconds per phase (sample, score, rank, train), as the loop measured them. */
  phases: Readonly<Record<string, number>>;
}

/** The span and metrics of one training step; `run` puts work under the step span. */
export class StepTrace {
  readonly span: Span;
  readonly #started = performance.now();
  #ended = false;

  /**
   * `step` is the step's number as the metrics file records it (1-based). Each step is the root
   * of its own trace (a run served by the trainer's StartRun would otherwise be one trace of hours);
   * the span active at construction, if any, is linked instead.
   */
  constructor(step: number, method?: string) {
    const attributes: Attributes = { [ATTR_RDPO_STEP]: step };
    if (method) attributes[ATTR_RDPO_METHOD] = method;
    const link = linkTo(activeContext());
    this.span = startSpan(SPAN_RDPO_STEP, attributes, { parent: ROOT_CONTEXT, links: link ? [link] : [] });
  }

  /** The number of prompts the step samples (the last batch of an epoch may be short). */
  setPromptBatch(prompts: number): void {
    this.span.setAttribute(ATTR_RDPO_PROMPT_BATCH, prompts);
  }

  /** Runs `fn` with the step span active (its RPCs become the step's children). */
  run<T>(fn: () => Promise<T>): Promise<T> {
    return inSpan(this.span, fn);
  }

  /** Ends the span with the step's results and records the duration histograms. */
  finish(summary: StepSummary): void {
    if (this.#ended) return;
    this.#ended = true;
    this.span.setAttributes({
      [ATTR_RDPO_PAIRS]: summary.pairs,
      [ATTR_RDPO_SKIPPED_TIES]: summary.skippedTies,
      [ATTR_RDPO_REWARD_MARGIN]: summary.rewardMargin,
    });
    for (const [phase, ms] of Object.entries(summary.phases)) {
      if (Number.isFinite(ms)) trainerPhaseDuration.record(ms, { [ATTR_RDPO_PHASE]: phase });
    }
    trainerStepDuration.record(performance.now() - this.#started);
    trainerPairs.add(summary.pairs);
    trainerSkippedTies.add(summary.skippedTies);
    this.span.end();
  }

  /** Ends the span as failed (the step did not complete; no step metrics are recorded). */
  fail(error: unknown): void {
    if (this.#ended) return;
    this.#ended = true;
    failSpan(this.span, error);
    this.span.end();
  }
}

/**
 * Runs one phase call (`phase` is "sample", "score", ...) in a child span of the active one;
 * `stepIndex` is the inference-step index the call belongs to, `finetune` whether it is a
 * fine-tune step.
 */
export function phaseSpan<T>(
  phase: string,
  fn: () => Promise<T>,
  stepIndex?: number,
  finetune?: boolean,
): Promise<T> {
  const attributes: Attributes = { [ATTR_RDPO_PHASE]: phase };
  if (stepIndex !== undefined) attributes[ATTR_RDPO_STEP_INDEX] = stepIndex;
  if (finetune !== undefined) attributes[ATTR_RDPO_FINETUNE] = finetune;
  return withSpan(`${SPAN_RDPO_PHASE_PREFIX}${phase}`, attributes, () => fn());
}

/**
 * Adds a `rdpo.finetune_step` event to the active span: what one fine-tune timestep index gave
 * (pairs recorded, ties skipped).
 */
export function finetuneStepEvent(stepIndex: number, pairs: number, skippedTies: number): void {
  trace.getActiveSpan()?.addEvent(EVENT_RDPO_FINETUNE_STEP, {
    [ATTR_RDPO_STEP_INDEX]: stepIndex,
    [ATTR_RDPO_PAIRS]: pairs,
    [ATTR_RDPO_SKIPPED_TIES]: skippedTies,
  });
}
