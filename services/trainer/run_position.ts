import type { LoadedCheckpoint } from "./checkpoint.ts";
import type { PromptCursor } from "./prompts.ts";

/** Where the run stands; a checkpoint stores exactly this (plus the adapter and optimizer). */
export interface RunPosition {
  step: number;
  cursor: PromptCursor;
  optimizerStep: number;
}

// A checkpoint inside an epoch (epoch.ts) resumes at the epoch's start: no update happened since,
// so the adapter is the one that drew the epoch's batches, and sampling them again is exact.
export function startPosition(c: LoadedCheckpoint | null): RunPosition {
  const begin = c?.state.extra?.epoch_start as { step: number; cursor: PromptCursor } | undefined;
  return {
    step: begin?.step ?? c?.state.step ?? 0,
    cursor: begin?.cursor ?? c?.state.prompt_cursor ?? { epoch: 0, index: 0 },
    optimizerStep: c?.optimizer?.step ?? 0,
  };
}
