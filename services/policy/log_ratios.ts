import * as tf from "@tensorflow/tfjs-core";
import { logRatio, stepLogProb } from "../../lib/rdpo/log_prob.ts";
import { stepMean } from "../../lib/rdpo/sampler_step.ts";
import type { StepOptions, TransitionsInput } from "./core_types.ts";
import type { HostTensor } from "./denoiser.ts";
import type { PolicyParts } from "./policy_parts.ts";
import { withReadback } from "./readback.ts";
import { checkTransitions, referenceMean } from "./transitions.ts";

/** h, log pi_theta and log pi_ref per transition (proto LogRatios; RDPO_SPEC.md section 2). */
export async function logRatios(
  parts: PolicyParts,
  input: { transitions: TransitionsInput; step: StepOptions },
): Promise<{
  logRatios: HostTensor;
  policyLogProbs: HostTensor;
  referenceLogProbs: HostTensor;
}> {
  parts.adapters.require("LogRatios");
  const t = input.transitions;
  const { batch, shape, coeffs } = checkTransitions(parts, t, "transitions", input.step, true);
  parts.limits.checkBatch(batch, "transitions");
  const w = input.step.guidanceScale;
  const red = input.step.reduction;
  return await withReadback(async (rb) => {
    let reads!: {
      logRatios: Promise<HostTensor>;
      policy: Promise<HostTensor>;
      reference: Promise<HostTensor>;
    };
    tf.tidy(() => {
      const x = tf.tensor4d(t.latents.data, shape);
      const next = tf.tensor4d(t.nextLatents!.data, shape);
      const muRef = referenceMean(parts.denoiser, t, x, coeffs, w);
      const cond = parts.denoiser.conditioning(t.conditioning, batch, w);
      let muTheta: tf.Tensor4D;
      try {
        const eps = parts.denoiser.noise(x, coeffs.map((c) => c.timestep), cond, w, true);
        muTheta = stepMean(x, eps, coeffs).mean as tf.Tensor4D;
      } finally {
        cond.dispose();
      }
      reads = {
        logRatios: rb.float(logRatio(next, muTheta, muRef, coeffs, red)),
        policy: rb.float(stepLogProb(next, muTheta, coeffs, red)),
        reference: rb.float(stepLogProb(next, muRef, coeffs, red)),
      };
    });
    return {
      logRatios: await reads.logRatios,
      policyLogProbs: await reads.policy,
      referenceLogProbs: await reads.reference,
    };
  });
}
