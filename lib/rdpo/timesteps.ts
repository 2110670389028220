/**
 * Inference timesteps and the previous timestep, as diffusers' DDIMScheduler.set_timesteps and
 * DDIMScheduler.step compute them (RDPO_SPEC.md section 1). Plain numbers, no tensors, so the trainer
 * can use them without a tfjs backend.
 */
import { InvalidArgumentError } from "../errors.ts";
import type { ScheduleConfig } from "./schedule.ts";

type SpacingConfig = Pick<ScheduleConfig, "numTrainTimesteps" | "stepsOffset" | "timestepSpacing">;

/** numpy's round (half to even), used by diffusers' timestep spacings. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** Validates T against the training schedule (diffusers raises the same condition). */
export function checkNumInferenceSteps(
  config: Pick<ScheduleConfig, "numTrainTimesteps">,
  numInferenceSteps: number,
  field = "num_inference_steps",
): void {
  if (!Number.isInteger(numInferenceSteps) || numInferenceSteps < 1) {
    throw new InvalidArgumentError(field, `expected an integer >= 1, got ${numInferenceSteps}`);
  }
  if (numInferenceSteps > config.numTrainTimesteps) {
    throw new InvalidArgumentError(
      field,
      `${numInferenceSteps} exceeds num_train_timesteps (${config.numTrainTimesteps})`,
    );
  }
}

/**
 * The T inference timesteps, noisiest first. "leading" (Stable Diffusion): ratio = N // T,
 * timesteps = reversed(arange(T) * ratio) + steps_offset; T = 20 gives 951, 901, ..., 1.
 */
export function inferenceTimesteps(
  config: SpacingConfig,
  numInferenceSteps: number,
  field = "num_inference_steps",
): number[] {
  checkNumInferenceSteps(config, numInferenceSteps, field);
  const n = config.numTrainTimesteps;
  const steps = numInferenceSteps;
  switch (config.timestepSpacing) {
    case "leading": {
      const ratio = Math.floor(n / steps);
      const out: number[] = [];
      for (let i = steps - 1; i >= 0; i--) out.push(i * ratio + config.stepsOffset);
      return out;
    }
    case "trailing": {
      // np.round(np.arange(N, 0, -N / T)) - 1
      const ratio = n / steps;
      const count = Math.ceil(-n / -ratio);
      const out: number[] = [];
      for (let i = 0; i < count; i++) out.push(roundHalfEven(n - i * ratio) - 1);
      return out;
    }
    case "linspace": {
      // np.linspace(0, N - 1, T).round()[::-1]
      const out: number[] = [];
      const step = steps > 1 ? (n - 1) / (steps - 1) : 0;
      for (let i = 0; i < steps; i++) out.push(i === steps - 1 ? n - 1 : roundHalfEven(i * step));
      if (steps === 1) out[0] = 0;
      return out.reverse();
    }
  }
}

/** diffusers' prev_timestep = t - N // T (negative at the last step). */
export function previousTimestep(
  config: Pick<ScheduleConfig, "numTrainTimesteps">,
  numInferenceSteps: number,
  timestep: number,
): number {
  checkNumInferenceSteps(config, numInferenceSteps);
  return timestep - Math.floor(config.numTrainTimesteps / numInferenceSteps);
}

/** Timestep t and t_prev of inference step `stepIndex` (0 = the first, noisiest step). */
export function timestepPair(
  config: SpacingConfig,
  numInferenceSteps: number,
  stepIndex: number,
  field = "step_index",
): { timestep: number; prevTimestep: number } {
  const timesteps = inferenceTimesteps(config, numInferenceSteps);
  if (!Number.isInteger(stepIndex) || stepIndex < 0 || stepIndex >= timesteps.length) {
    throw new InvalidArgumentError(
      field,
      `step index ${stepIndex} is outside [0, ${
        timesteps.length - 1
      }] for ${numInferenceSteps} inference steps`,
    );
  }
  const timestep = timesteps[stepIndex];
  return { timestep, prevTimestep: previousTimestep(config, numInferenceSteps, timestep) };
}
