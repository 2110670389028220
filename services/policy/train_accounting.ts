/** Optimizer-step accounting: the last applied step, so a retried request is answered, not re-applied. */
import { FailedPreconditionError } from "../../lib/errors.ts";
import type { AdapterHolder } from "./adapter_holder.ts";
import type { TrainStepOutput } from "./core_types.ts";

export class TrainAccounting {
  last: { requestId: string; stepBefore: number; result: TrainStepOutput } | null = null;

  check(adapters: AdapterHolder, expected: number | undefined, requestId: string): TrainStepOutput | null {
    const opt = adapters.require("training").optimizer;
    const last = this.last;
    if (
      requestId && last && last.requestId === requestId &&
      (expected === undefined || expected === last.stepBefore)
    ) {
      return last.result; // a retry of the step just applied: answer it again, apply nothing
    }
    if (expected !== undefined && expected !== opt.step) {
      throw new FailedPreconditionError(
        `expected_optimizer_step: the adapter is at optimizer step ${opt.step}, the request expects ${expected}`,
      );
    }
    return null;
  }
}
