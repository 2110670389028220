/**
 * The policy core in a Deno Worker (issue 18): the worker loads the backend, the pipeline and the
 * PolicyCore and runs every model call; the gRPC adapter stays on the main thread
 * (worker_core.ts), which keeps answering health checks and small RPCs during a long UNet pass.
 * The core is used through its public API only.
 */
import { serveObject } from "../../lib/worker/remote.ts";
import { initBackend, parseBackendName } from "../../lib/tensor/backend.ts";
import { describeDevice } from "../../lib/tensor/limits.ts";
import { PolicyCore, type PolicyCoreOptions } from "./core.ts";
import { disposePipeline, loadPipeline } from "./pipeline.ts";
import { POLICY_CORE_METHODS, type PolicyWorkerInit } from "./worker_core.ts";

serveObject(async (init) => {
  const i = init as PolicyWorkerInit;
  const backend = await initBackend(parseBackendName(i.backend));
  if (backend === "webgpu") {
    // The adapter and the limits the device was created with (the tensor limit follows them).
    console.error(`policy: webgpu device ${JSON.stringify(await describeDevice())}`);
  }
  const pipeline = await loadPipeline(i.modelDir, { variant: i.variant });
  pipeline.unet.gradientCheckpointing = i.gradientCheckpointing;
  const core = new PolicyCore(pipeline, { ...i.core, backend } as PolicyCoreOptions);
  if (i.initAdapter) await core.loadAdapter({ path: i.initAdapter });
  const api: Record<string, unknown> = {
    shutdown() {
      core.dispose();
      disposePipeline(pipeline);
    },
  };
  for (const m of POLICY_CORE_METHODS) {
    api[m] = (...args: unknown[]) => (core[m] as (...a: unknown[]) => unknown)(...args);
  }
  return api;
});
