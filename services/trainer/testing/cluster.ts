/**
 * A loopback "cluster" for data-parallel tests and the dp benchmark: one reward service and N policy
 * service processes on the tiny random model, plus a small RDPO config pointing at them.
 */
import { join } from "node:path";
import { ServiceProcess } from "../../../lib/process/service_process.ts";
import { initBackend } from "../../../lib/tensor/backend.ts";
import { writeTinyModel } from "../../policy/testing/tiny_model.ts";
import { parseConfig, type RunConfig } from "../config.ts";

export interface LoopbackCluster {
  tmp: string;
  reward: ServiceProcess;
  policies: ServiceProcess[];
  /** The policy addresses (after start). */
  addresses(): string[];
  /** A run config; `overrides` replace top-level keys. */
  config(runDir: string, policy: string | string[], overrides?: Record<string, unknown>): RunConfig;
  /** The same, unparsed (for a config file). */
  rawConfig(
    runDir: string,
    policy: string | string[],
    overrides?: Record<string, unknown>,
  ): Record<string, unknown>;
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** `env(service)`: extra environment of a process ("rdpo-reward", "rdpo-policy-0", ...), e.g. OTLP export. */
export async function loopbackCluster(
  replicas: number,
  env: (service: string) => Record<string, string> | undefined = () => undefined,
): Promise<LoopbackCluster> {
  const tmp = await Deno.makeTempDir({ prefix: "rdpo-dp-" });
  const modelDir = join(tmp, "model");
  await initBackend("cpu"); // only to write the random model's weights
  await writeTinyModel(modelDir, { seed: 4, std: 0.05 });
  const promptsFile = join(tmp, "prompts.txt");
  await Deno.writeTextFile(
    promptsFile,
    "a red circle\na blue square\na small green circle\na large red square\n",
  );
  const reward = new ServiceProcess("services/reward/main.ts", [], { env: env("rdpo-reward") });
  const policies = Array.from({ length: replicas }, (_, i) =>
    new ServiceProcess("services/policy/main.ts", [
      "--model-dir",
      modelDir,
      "--lora-rank",
      "2",
      "--adapter-root",
      join(tmp, `adapters-${i}`),
    ], { env: env(`rdpo-policy-${i}`) }));
  const cluster: LoopbackCluster = {
    tmp,
    reward,
    policies,
    addresses: () => policies.map((p) => p.address),
    config(runDir, policy, overrides = {}) {
      return parseConfig(
        JSON.stringify(cluster.rawConfig(runDir, policy, overrides)),
        "loopback cluster config",
      );
    },
    rawConfig(runDir, policy, overrides = {}) {
      return {
        method: "rdpo",
        seed: 3,
        run_dir: join(tmp, runDir),
        progress: "none",
        sampling: { num_inference_steps: 3, eta: 1.0, guidance_scale: 3.0 },
        preference: { num_candidates: 3, finetune_step_indices: [0, 1] },
        loss: { beta: 0.1, lambda: 100 },
        lora: { rank: 2 },
        optimizer: { lr: 0.01 },
        training: { steps: 3, prompt_batch_size: 3 },
        prompts: { file: promptsFile },
        scorers: [{ name: "jpeg_compressibility", weight: 1 }],
        services: { policy, reward: reward.address },
        rpc: {
          deadline_ms: { default: 60_000 },
          retry: { max_attempts: 40, initial_backoff_ms: 100, max_backoff_ms: 1000, max_total_ms: 90_000 },
        },
        checkpoint: { every: 1, keep_last: 2 },
        ...overrides,
      };
    },
    async start() {
      await reward.start();
      await Promise.all(policies.map((p) => p.start()));
    },
    async stop() {
      await Promise.all(policies.map((p) => p.kill()));
      await reward.kill();
    },
  };
  return cluster;
}
