import type { AdapterHolder } from "./adapter_holder.ts";
import type { Denoiser } from "./denoiser.ts";
import type { PolicyPipeline } from "./pipeline.ts";
import type { RequestLimits } from "./request_limits.ts";

/** What the policy core's operations run on: the model, its denoiser, the request limits, the adapter. */
export interface PolicyParts {
  readonly pipeline: PolicyPipeline;
  readonly denoiser: Denoiser;
  readonly limits: RequestLimits;
  readonly adapters: AdapterHolder;
}
