/**
 * Every command of the project, by its deno task name: `rdpo` dispatches to them, the README's
 * "Commands" section and the --help test list them. Each is loaded on demand, so `rdpo train` does
 * not load the reward service's ONNX Runtime. A new command: export a CommandSpec
 * (lib/cli/command.ts) from its entry point, add it here and as a deno task.
 */
import type { CommandSpec } from "../lib/cli/command.ts";

export interface CommandEntry {
  /** The deno task name; `rdpo` spells "serve:policy" as `rdpo serve policy`, "gen:wasm" as it is. */
  name: string;
  /** The entry point the deno task runs, and the arguments before the flags. */
  script: string;
  scriptArgs: readonly string[];
  load(): Promise<CommandSpec>;
}

const spec = (s: unknown) => s as CommandSpec;

export const COMMANDS: readonly CommandEntry[] = [
  {
    name: "demo",
    script: "tools/demo.ts",
    scriptArgs: [],
    load: async () => spec((await import("./demo.ts")).DEMO_COMMAND),
  },
  {
    name: "train",
    script: "services/trainer/main.ts",
    scriptArgs: ["train"],
    load: async () => spec((await import("../services/trainer/main.ts")).TRAIN_COMMAND),
  },
  {
    name: "eval",
    script: "services/trainer/main.ts",
    scriptArgs: ["eval"],
    load: async () => spec((await import("../services/trainer/main.ts")).EVAL_COMMAND),
  },
  {
    name: "pretrain",
    script: "tools/pretrain.ts",
    scriptArgs: [],
    load: async () => spec((await import("./pretrain.ts")).PRETRAIN_COMMAND),
  },
  {
    name: "bench",
    script: "bench/main.ts",
    scriptArgs: [],
    load: async () => spec((await import("../bench/main.ts")).BENCH_COMMAND),
  },
  {
    name: "serve:reward",
    script: "services/reward/main.ts",
    scriptArgs: [],
    load: async () => spec((await import("../services/reward/main.ts")).REWARD_COMMAND),
  },
  {
    name: "serve:policy",
    script: "services/policy/main.ts",
    scriptArgs: [],
    load: async () => spec((await import("../services/policy/main.ts")).POLICY_COMMAND),
  },
  {
    name: "serve:trainer",
    script: "services/trainer/main.ts",
    scriptArgs: ["serve"],
    load: async () => spec((await import("../services/trainer/main.ts")).TRAINER_SERVE_COMMAND),
  },
  {
    name: "gen",
    script: "tools/gen.ts",
    scriptArgs: [],
    load: async () => spec((await import("./gen.ts")).GEN_COMMAND),
  },
  {
    name: "readme",
    script: "tools/readme_commands.ts",
    scriptArgs: [],
    load: async () => spec((await import("./readme_commands.ts")).README_COMMAND),
  },
  {
    name: "gen:wasm",
    script: "tools/gen_wasm.ts",
    scriptArgs: [],
    load: async () => spec((await import("./gen_wasm.ts")).GEN_WASM_COMMAND),
  },
  {
    name: "k8s:validate",
    script: "deploy/k8s/manifests.ts",
    scriptArgs: [],
    load: async () => spec((await import("../deploy/k8s/manifests.ts")).K8S_VALIDATE_COMMAND),
  },
  {
    name: "fuzz",
    script: "tools/fuzz.ts",
    scriptArgs: [],
    load: async () => spec((await import("./fuzz.ts")).FUZZ_COMMAND),
  },
  {
    name: "storm",
    script: "tools/h2_storm.ts",
    scriptArgs: [],
    load: async () => spec((await import("./h2_storm.ts")).STORM_COMMAND),
  },
  {
    name: "make-model",
    script: "tools/make_model.ts",
    scriptArgs: [],
    load: async () => spec((await import("./make_model.ts")).MAKE_MODEL_COMMAND),
  },
  {
    name: "sd15:webgpu-check",
    script: "tools/sd15_webgpu_check.ts",
    scriptArgs: [],
    load: async () => spec((await import("./sd15_webgpu_check.ts")).SD15_WEBGPU_CHECK_COMMAND),
  },
];

/**
 * Scripts with no deno task, on the same convention (their name is their path): run them with
 * `deno run -A <path>`. The --help test and the README cover them too.
 */
export const SCRIPTS: readonly CommandEntry[] = [
  {
    name: "tools/healthcheck.ts",
    script: "tools/healthcheck.ts",
    scriptArgs: [],
    load: async () => spec((await import("./healthcheck.ts")).HEALTHCHECK_COMMAND),
  },
  {
    name: "tools/sample_grid.ts",
    script: "tools/sample_grid.ts",
    scriptArgs: [],
    load: async () => spec((await import("./sample_grid.ts")).SAMPLE_GRID_COMMAND),
  },
  {
    name: "bench/wire_bench.ts",
    script: "bench/wire_bench.ts",
    scriptArgs: [],
    load: async () => spec((await import("../bench/wire_bench.ts")).WIRE_BENCH_COMMAND),
  },
  {
    name: "bench/step_wire_bench.ts",
    script: "bench/step_wire_bench.ts",
    scriptArgs: [],
    load: async () => spec((await import("../bench/step_wire_bench.ts")).STEP_WIRE_BENCH_COMMAND),
  },
  {
    name: "bench/dp_bench.ts",
    script: "bench/dp_bench.ts",
    scriptArgs: [],
    load: async () => spec((await import("../bench/dp_bench.ts")).DP_BENCH_COMMAND),
  },
  {
    name: "bench/security_bench.ts",
    script: "bench/security_bench.ts",
    scriptArgs: [],
    load: async () => spec((await import("../bench/security_bench.ts")).SECURITY_BENCH_COMMAND),
  },
  {
    name: "services/policy/model/bench.ts",
    script: "services/policy/model/bench.ts",
    scriptArgs: [],
    load: async () => spec((await import("../services/policy/model/bench.ts")).MODEL_BENCH_COMMAND),
  },
  {
    name: "services/reward/scorers/bench.ts",
    script: "services/reward/scorers/bench.ts",
    scriptArgs: [],
    load: async () => spec((await import("../services/reward/scorers/bench.ts")).SCORER_BENCH_COMMAND),
  },
  {
    name: "services/reward/preprocess/bench.ts",
    script: "services/reward/preprocess/bench.ts",
    scriptArgs: [],
    load: async () => spec((await import("../services/reward/preprocess/bench.ts")).PREPROCESS_BENCH_COMMAND),
  },
  {
    name: "services/reward/preprocess/kernel_profile.ts",
    script: "services/reward/preprocess/kernel_profile.ts",
    scriptArgs: [],
    load: async () =>
      spec((await import("../services/reward/preprocess/kernel_profile.ts")).KERNEL_PROFILE_COMMAND),
  },
  {
    name: "services/reward/bench.ts",
    script: "services/reward/bench.ts",
    scriptArgs: [],
    load: async () => spec((await import("../services/reward/bench.ts")).REWARD_BENCH_COMMAND),
  },
  {
    name: "services/policy/model/sd15/memory_main.ts",
    script: "services/policy/model/sd15/memory_main.ts",
    scriptArgs: [],
    load: async () =>
      spec((await import("../services/policy/model/sd15/memory_main.ts")).SD15_MEMORY_COMMAND),
  },
  {
    name: "experiments/method_comparison/run.ts",
    script: "experiments/method_comparison/run.ts",
    scriptArgs: [],
    load: async () =>
      spec((await import("../experiments/method_comparison/run.ts")).METHOD_COMPARISON_COMMAND),
  },
  {
    name: "experiments/step_signal/run.ts",
    script: "experiments/step_signal/run.ts",
    scriptArgs: [],
    load: async () => spec((await import("../experiments/step_signal/run.ts")).STEP_SIGNAL_COMMAND),
  },
  {
    name: "tools/attributes/train_classifier.ts",
    script: "tools/attributes/train_classifier.ts",
    scriptArgs: [],
    load: async () => spec((await import("./attributes/train_classifier.ts")).TRAIN_CLASSIFIER_COMMAND),
  },
  {
    // Bundled by bench/gpu/run.sh for the GPU machine; here it runs (and answers --help) as any script.
    name: "bench/gpu/sd15_main.ts",
    script: "bench/gpu/sd15_main.ts",
    scriptArgs: [],
    load: async () => spec((await import("../bench/gpu/sd15_main.ts")).SD15_GPU_BENCH_COMMAND),
  },
];

/**
 * Internal child processes on the same convention (their name is their path), started by the project
 * itself, not by users: the --help test covers them; `rdpo` and the README do not list them.
 */
export const INTERNAL: readonly CommandEntry[] = [
  {
    name: "lib/rpc/transport/front.ts",
    script: "lib/rpc/transport/front.ts",
    scriptArgs: [],
    load: async () => spec((await import("../lib/rpc/transport/front.ts")).FRONT_COMMAND),
  },
];

/** `["serve", "policy", "--port", "0"]` -> the serve:policy entry and `["--port", "0"]`. */
export function findCommand(args: readonly string[]): { entry: CommandEntry; rest: string[] } | undefined {
  const [first, second] = args;
  const two = first === "serve" && second !== undefined ? `serve:${second}` : undefined;
  const entry2 = COMMANDS.find((c) => c.name === two);
  if (entry2) return { entry: entry2, rest: args.slice(2) };
  const entry = COMMANDS.find((c) => c.name === first);
  return entry ? { entry, rest: args.slice(1) } : undefined;
}
