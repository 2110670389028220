/**
 * SampleCandidates with lead steps (issue 21): the single-candidate steps between two choice points
 * of a trajectory run in the same call as the step after them, so the trainer makes one RPC per
 * choice point instead of one per inference step. Each lead step is exactly the core call the
 * trainer would otherwise have made (K = 1, its own noise key, no candidate noise prediction, no
 * decoding), so the result is the same by construction; the last step's outputs are returned, with
 * the x_t it started from (the trainer's parent of that step's pairs).
 */
import { InvalidArgumentError } from "../../lib/errors.ts";
import type { HostTensor } from "./denoiser.ts";
import type { SampleCandidatesInput, SampleCandidatesOutput } from "./core_types.ts";
import type { PolicyCoreApi } from "./worker_core.ts";

export interface LeadSteps {
  /** Single-candidate steps to run before `input.stepIndex` + count (0: none). */
  count: number;
  /** Their noise key (item b uses stream + b, as a num_candidates 1 call). */
  noise: { seed: bigint; stream: bigint };
}

/**
 * Runs `lead.count` single-candidate steps from `input.stepIndex`, then the step the rest of
 * `input` describes from their result; `input.stepIndex` is the first lead step's.
 */
export async function sampleWithLeadSteps(
  core: Pick<PolicyCoreApi, "sampleCandidates">,
  input: SampleCandidatesInput,
  lead: LeadSteps,
): Promise<SampleCandidatesOutput & { parentLatents?: HostTensor }> {
  if (lead.count === 0) return await core.sampleCandidates(input);
  const steps = input.step.numInferenceSteps;
  if (input.stepIndex + lead.count >= steps) {
    throw new InvalidArgumentError(
      "lead_steps",
      `step_index ${input.stepIndex} + lead_steps ${lead.count} must be below num_inference_steps ${steps}`,
    );
  }
  let latents = input.latents;
  let parentNoisePred = input.parentNoisePred;
  for (let s = 0; s < lead.count; s++) {
    const r = await core.sampleCandidates({
      ...input,
      latents,
      stepIndex: input.stepIndex + s,
      numCandidates: 1,
      noise: lead.noise,
      parentNoisePred,
      predictCandidateNoise: false,
      decodeCandidates: false,
      decodeParent: false,
    });
    // [B, 1, C, H, W] -> the next step's parents [B, C, H, W].
    const [b, , ...chw] = r.candidates.shape;
    latents = { shape: [b, ...chw], data: r.candidates.data };
    parentNoisePred = undefined;
  }
  // A copy: a worker-hosted core takes the arguments' buffers (transferred, lib/worker/remote.ts).
  const parentLatents = { shape: latents.shape, data: latents.data.slice() };
  const last = await core.sampleCandidates({
    ...input,
    latents,
    stepIndex: input.stepIndex + lead.count,
    parentNoisePred,
  });
  return { ...last, parentLatents };
}
