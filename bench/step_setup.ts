/**
 * The RDPO step the wire benchmarks measure (bench/step_wire_bench.ts, bench/session_hop_probe.ts):
 * the data-parallel tests' loopback cluster (services/trainer/testing/cluster.ts: tiny random model,
 * four prompts, the reward service and one policy service as processes) with the step both benchmarks
 * time (T = 4, K = 3, fine-tune steps [0, 2], 2 prompts, JPEG reward, no evaluation).
 */
import type { ServiceProcess } from "../lib/process/service_process.ts";
import { type LoopbackCluster, loopbackCluster } from "../services/trainer/testing/cluster.ts";
import type { RunConfig } from "../services/trainer/config.ts";

export interface StepServices {
  policy: ServiceProcess;
  reward: ServiceProcess;
  cluster: LoopbackCluster;
  /** Removes the cluster's folder (model, adapters); call after stopping the services. */
  remove(): Promise<void>;
}

/** Makes (does not start) the two services; `env` goes to both processes. */
export async function stepServices(env?: Record<string, string>): Promise<StepServices> {
  const cluster = await loopbackCluster(1, () => env);
  return {
    policy: cluster.policies[0],
    reward: cluster.reward,
    cluster,
    remove: () => Deno.remove(cluster.tmp, { recursive: true }).catch(() => {}),
  };
}

/** The measured run's config against started services. */
export function stepConfig(
  services: StepServices,
  run: { runDir: string; steps: number; estimator: string; sessionStream: boolean },
): RunConfig {
  // The cluster names run folders under its own tmp; the benchmarks keep theirs, so run_dir is overridden.
  return services.cluster.config("run", services.policy.address, {
    run_dir: run.runDir,
    sampling: { num_inference_steps: 4, eta: 1.0, guidance_scale: 3.0 },
    preference: { num_candidates: 3, finetune_step_indices: [0, 2], estimator: run.estimator },
    training: { steps: run.steps, prompt_batch_size: 2 },
    eval: { every: 0, at_start: false, at_end: false },
    checkpoint: { every: run.steps, keep_last: 1 },
    rpc: { session_stream: run.sessionStream },
  });
}
