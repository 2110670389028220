/**
 * The main thread's stand-in for a PolicyCore that lives in a Deno Worker (worker.ts): the same
 * methods the gRPC adapter (service.ts) calls, each forwarded to the worker with its tensors
 * transferred (lib/worker/remote.ts). The event loop of the main thread stays free while the
 * worker runs a UNet pass, so health checks and GetInfo answer at once.
 */
import { RemoteObject } from "../../lib/worker/remote.ts";
import type { PolicyCore, PolicyCoreOptions } from "./core.ts";

/** Calls after which GetInfo's answer (optimizer step, adapter checksum) may differ. */
const STATE_CHANGING = ["trainStep", "applyGradients", "loadAdapter"] as const;

/** The PolicyCore methods the gRPC adapter calls. */
export const POLICY_CORE_METHODS = [
  "info",
  "encodePrompts",
  "sampleCandidates",
  "predictNoise",
  "decode",
  "encodeImages",
  "generate",
  "logRatios",
  "trainStep",
  "applyGradients",
  "getAdapter",
  "loadAdapter",
  "saveAdapter",
] as const;

/** What service.ts needs of a core: a PolicyCore, or its worker-hosted stand-in. */
export type PolicyCoreApi = Pick<PolicyCore, (typeof POLICY_CORE_METHODS)[number]>;

/** What the main thread sends to build the core in the worker. */
export interface PolicyWorkerInit {
  modelDir: string;
  /** Weight file variant ("fp16": *.fp16.safetensors, up-cast at load); "" for the plain files. */
  variant: string;
  /** Recompute UNet blocks in the backward pass instead of keeping their activations. */
  gradientCheckpointing: boolean;
  backend: string;
  core: Omit<PolicyCoreOptions, "backend">;
  /** Adapter file (under adapterRoot) to load at start; "" for none. */
  initAdapter: string;
}

/** Starts the worker, loads the model there, and returns the core's stand-in. */
export async function startWorkerCore(
  init: PolicyWorkerInit,
): Promise<PolicyCoreApi & { dispose(): Promise<void> }> {
  const remote = await RemoteObject.start(new URL("./worker.ts", import.meta.url), init, "policy-core");
  // GetInfo is answered on the main thread from the state after the last completed call that can
  // change it, so it does not wait behind a UNet pass (the trainer polls it before every step).
  let info = await remote.call<Record<string, unknown>>("info");
  const api: Record<string, unknown> = {
    async dispose() {
      try {
        await remote.call("shutdown");
      } finally {
        remote.terminate();
      }
    },
  };
  for (const m of POLICY_CORE_METHODS) api[m] = (...args: unknown[]) => remote.call(m, ...args);
  for (const m of STATE_CHANGING) {
    api[m] = async (...args: unknown[]) => {
      try {
        return await remote.call(m, ...args);
      } finally {
        info = await remote.call<Record<string, unknown>>("info");
      }
    };
  }
  // Functions cannot be posted to the worker: Generate's checkContinue (client cancellation) stays
  // behind; its deadline travels as deadlineEpochMs (core.ts).
  api.generate = (input: Record<string, unknown>) => {
    const { checkContinue: _local, ...rest } = input;
    return remote.call("generate", rest);
  };
  api.info = () => Promise.resolve(info);
  return api as unknown as PolicyCoreApi & { dispose(): Promise<void> };
}
