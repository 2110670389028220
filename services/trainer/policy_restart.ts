/** Noticing a restarted policy (adapter lost) and what a resume means for bit-identity. */
import { FailedPreconditionError } from "../../lib/errors.ts";
import { Code } from "../../lib/rpc/status.ts";
import type { LoadedCheckpoint } from "./checkpoint.ts";

/** The policy lost or changed the run's adapter (restart): recovered by reload + replay. */
export class AdapterLostError extends FailedPreconditionError {
  override name = "AdapterLostError";
}

/** A TrainStep refused for step accounting, or a lost adapter noticed by the loop. */
export function isPolicyRestart(e: unknown): boolean {
  if (e instanceof AdapterLostError) return true;
  return (e as { code?: number })?.code === Code.FAILED_PRECONDITION &&
    String((e as Error).message).includes("expected_optimizer_step");
}

/**
 * Whether a resumed run stays bit-identical to an uninterrupted one: yes when the checkpoint and
 * this run both train data-parallel (any replica counts: sharding and reduction are defined over the
 * global batch, data_parallel.ts), or both with one address; no across the two (one batched
 * TrainStep sums the pairs' gradients in another float order than the per-prompt reduction).
 */
export function resumeNote(ckpt: LoadedCheckpoint, replicas: number): string {
  const before = Number(
    (ckpt.state.metrics as { data_parallel?: { replicas?: number } })?.data_parallel?.replicas ?? 0,
  );
  const mode = (p: number) => (p ? `data-parallel over ${p} replica(s)` : "one policy address");
  if ((before > 0) === (replicas > 0)) {
    return `resume: checkpoint written with ${mode(before)}, resumed with ${
      mode(replicas)
    }: bit-identical to an uninterrupted run`;
  }
  return `resume: checkpoint written with ${mode(before)}, resumed with ${
    mode(replicas)
  }: NOT bit-identical ` +
    "(the gradient is summed in another order; the difference is float32 rounding)";
}
