/**
 * Policy-service telemetry: spans and duration histograms for a UNet forward (guided noise
 * prediction), a VAE decode and a train step.
 *
 * The UNet and decode spans wrap synchronous tfjs code. On the cpu and wasm backends the kernels
 * run inside the call, so the span is the compute time; on webgpu the call only queues work and
 * the time shows up where the result is read back (the enclosing RPC span still covers it).
 */
import type { Attributes } from "@opentelemetry/api";
import {
  ATTR_POLICY_BATCH,
  ATTR_POLICY_LOSS_KIND,
  ATTR_POLICY_PAIRS,
  ATTR_POLICY_TIMESTEP,
  SPAN_POLICY_DECODE,
  SPAN_POLICY_TRAIN_STEP,
  SPAN_POLICY_UNET,
} from "./attributes.ts";
import { policyDecodeDuration, policyTrainStepDuration, policyUnetDuration } from "./instruments.ts";
import { withSpan, withSpanSync } from "./tracing.ts";

/** One guided UNet pass over `batch` samples at `timestep`. */
export function traceUnet<T>(batch: number, timestep: number, fn: () => T): T {
  const t0 = performance.now();
  const out = withSpanSync(
    SPAN_POLICY_UNET,
    { [ATTR_POLICY_BATCH]: batch, [ATTR_POLICY_TIMESTEP]: timestep },
    fn,
  );
  policyUnetDuration.record(performance.now() - t0);
  return out;
}

/** One VAE decode of `batch` latents. */
export function traceDecode<T>(batch: number, fn: () => T): T {
  const t0 = performance.now();
  const out = withSpanSync(SPAN_POLICY_DECODE, { [ATTR_POLICY_BATCH]: batch }, fn);
  policyDecodeDuration.record(performance.now() - t0);
  return out;
}

/** One train step on `pairs` preference pairs (loss `lossKind` when known). */
export async function traceTrainStep<T>(pairs: number, fn: () => Promise<T>, lossKind?: string): Promise<T> {
  const t0 = performance.now();
  const attributes: Attributes = { [ATTR_POLICY_PAIRS]: pairs };
  if (lossKind) attributes[ATTR_POLICY_LOSS_KIND] = lossKind;
  const out = await withSpan(SPAN_POLICY_TRAIN_STEP, attributes, () => fn());
  policyTrainStepDuration.record(performance.now() - t0);
  return out;
}
