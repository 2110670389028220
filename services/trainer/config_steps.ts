/**
 * Step numbering (RDPO_SPEC.md section 4): our `step_index` is 0-based in sampling order, the paper's
 * "step t" counts down (see config.ts's header).
 */
/** The paper's step t (x_t -> x_{t-1}, T = first) as our 0-based step_index. */
export function paperStepToIndex(paperStep: number, numInferenceSteps: number): number {
  return numInferenceSteps - paperStep;
}

/** Our 0-based step_index as the paper's step number. */
export function indexToPaperStep(stepIndex: number, numInferenceSteps: number): number {
  return numInferenceSteps - stepIndex;
}

/**
 * The default trained steps: `count` uniformly spaced indices starting at the first step,
 * round(i * T / count). T = 20 gives 0, 4, 8, 12, 16 = the paper's 20, 16, 12, 8, 4.
 */
export function defaultFineTuneStepIndices(numInferenceSteps: number, count = 5): number[] {
  if (numInferenceSteps <= count) return Array.from({ length: numInferenceSteps }, (_, i) => i);
  const out = new Set<number>();
  for (let i = 0; i < count; i++) out.add(Math.round((i * numInferenceSteps) / count));
  return [...out].sort((a, b) => a - b);
}

// ---------------------------------------------------------------------------------------------
