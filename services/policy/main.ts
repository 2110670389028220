/**
 * `deno task serve:policy`: loads a diffusers-layout model folder (the embedded `models/tiny` unless
 * --model-dir) and serves PolicyService.
 *
 *   deno task serve:policy
 *   deno task serve:policy --model-dir models/tiny --port 50051
 *   deno task serve:policy --model-dir /models/sd15 --backend webgpu --role reference
 *
 * Every flag has an environment equivalent (POLICY_MODEL_DIR, POLICY_BACKEND, ...); see --help.
 * The model runs in a worker thread (worker.ts, worker_core.ts) so health checks and GetInfo answer
 * during a long UNet pass; --no-worker keeps it on the main thread.
 */
import { PolicyService } from "../../gen/rdpo/v1/policy_pb.ts";
import { serviceCommand, type ServiceMainOptions, startService } from "../../lib/rpc/main.ts";
import { runCommand } from "../../lib/cli/command.ts";
import type { FlagSpecs } from "../../lib/rpc/flags.ts";
import { BACKENDS, initBackend, parseBackendName } from "../../lib/tensor/backend.ts";
import { describeDevice } from "../../lib/tensor/limits.ts";
import { DEFAULT_MAX_INFERENCE_STEPS, DEFAULT_MAX_LORA_RANK, PolicyCore } from "./core.ts";
import { DEFAULT_LORA_TARGETS } from "./model/lora.ts";
import { disposePipeline, loadPipeline } from "./pipeline.ts";
import { policyService } from "./service.ts";
import { startWorkerCore } from "./worker_core.ts";

export const POLICY_FLAGS = {
  modelDir: {
    type: "string",
    env: ["POLICY_MODEL_DIR"],
    default: "models/tiny",
    description: "diffusers-layout model folder; models/tiny is the embedded pretrained model",
  },
  variant: {
    type: "string",
    env: ["POLICY_VARIANT"],
    default: "",
    description: 'weight file variant, e.g. "fp16" for *.fp16.safetensors (up-cast to float32 at load)',
  },
  backend: {
    type: "string",
    env: ["POLICY_BACKEND", "RDPO_BACKEND"],
    default: "wasm",
    choices: BACKENDS,
    description: "tfjs backend",
  },
  gradientCheckpointing: {
    type: "bool",
    env: ["POLICY_GRADIENT_CHECKPOINTING"],
    description: "recompute UNet block activations in the backward (SD1.5 train steps need it to fit 80 GB)",
  },
  role: {
    type: "string",
    env: ["POLICY_ROLE"],
    default: "policy",
    choices: ["policy", "reference"],
    description: "policy (base + LoRA) or reference (frozen base only)",
  },
  loraRank: { type: "int", env: ["POLICY_LORA_RANK"], default: 4, min: 1, description: "LoRA rank" },
  loraAlpha: {
    type: "number",
    env: ["POLICY_LORA_ALPHA"],
    default: 0,
    min: 0,
    description: "LoRA alpha (0: = rank)",
  },
  loraTargets: {
    type: "string",
    env: ["POLICY_LORA_TARGETS"],
    default: DEFAULT_LORA_TARGETS.join(","),
    description: "comma-separated target modules",
  },
  loraSeed: {
    type: "int",
    env: ["POLICY_LORA_SEED"],
    default: 0,
    min: 0,
    description: "seed of LoRA A's init",
  },
  adapterRoot: {
    type: "string",
    env: ["POLICY_ADAPTER_ROOT"],
    default: "adapters",
    description: "folder SaveAdapter/LoadAdapter paths resolve inside",
  },
  initAdapter: {
    type: "string",
    env: ["POLICY_INIT_ADAPTER"],
    default: "",
    description: "adapter file (under --adapter-root) to load at start",
  },
  maxBatch: {
    type: "int",
    env: ["POLICY_MAX_BATCH"],
    default: 64,
    min: 1,
    description: "largest number of samples in one request",
  },
  worker: {
    type: "bool",
    env: ["POLICY_WORKER"],
    default: true,
    description: "run the model in a worker thread (health and small RPCs answer during a UNet pass)",
  },
  maxLatentSide: {
    type: "int",
    env: ["POLICY_MAX_LATENT_SIDE"],
    default: 0,
    min: 0,
    description:
      "largest latent height/width a request may send (0: twice the model's; more: RESOURCE_EXHAUSTED)",
  },
  maxLoraRank: {
    type: "int",
    env: ["POLICY_MAX_LORA_RANK"],
    default: DEFAULT_MAX_LORA_RANK,
    min: 1,
    description: "largest LoRA rank LoadAdapter accepts (more: RESOURCE_EXHAUSTED)",
  },
  maxInferenceSteps: {
    type: "int",
    env: ["POLICY_MAX_INFERENCE_STEPS"],
    default: DEFAULT_MAX_INFERENCE_STEPS,
    min: 1,
    description: "most inference steps one request may ask for (more: RESOURCE_EXHAUSTED)",
  },
} as const satisfies FlagSpecs;

export function policyMainOptions(args?: readonly string[]): ServiceMainOptions<typeof POLICY_FLAGS> {
  return {
    name: "policy",
    defaultPort: 50052,
    args,
    summary: "serves PolicyService: a Stable-Diffusion-layout model (tfjs) with LoRA",
    examples: [
      "deno task serve:policy",
      "deno task serve:policy --model-dir /models/sd15 --backend webgpu --role reference --port 0",
    ],
    flags: POLICY_FLAGS,
    async setup(server, flags) {
      const options = {
        role: flags.role as "policy" | "reference",
        lora: {
          rank: flags.loraRank,
          alpha: flags.loraAlpha || flags.loraRank,
          targetModules: flags.loraTargets.split(",").map((s) => s.trim()).filter(Boolean),
          seed: flags.loraSeed,
        },
        adapterRoot: flags.adapterRoot,
        maxBatch: flags.maxBatch,
        maxInferenceSteps: flags.maxInferenceSteps,
        maxLatentSide: flags.maxLatentSide,
        maxLoraRank: flags.maxLoraRank,
      };
      await Deno.mkdir(flags.adapterRoot, { recursive: true });
      if (flags.worker) {
        const core = await startWorkerCore({
          modelDir: flags.modelDir,
          variant: flags.variant,
          gradientCheckpointing: flags.gradientCheckpointing,
          backend: flags.backend,
          core: options,
          initAdapter: flags.initAdapter,
        });
        server.addService(PolicyService, policyService(core));
        return () => core.dispose();
      }
      const backend = await initBackend(parseBackendName(flags.backend));
      if (backend === "webgpu") {
        // The adapter and the limits the device was created with (the tensor limit follows them).
        console.error(`policy: webgpu device ${JSON.stringify(await describeDevice())}`);
      }
      const pipeline = await loadPipeline(flags.modelDir, { variant: flags.variant });
      pipeline.unet.gradientCheckpointing = flags.gradientCheckpointing;
      const core = new PolicyCore(pipeline, { ...options, backend });
      if (flags.initAdapter) await core.loadAdapter({ path: flags.initAdapter });
      server.addService(PolicyService, policyService(core));
      return () => {
        core.dispose();
        disposePipeline(pipeline);
      };
    },
  };
}

/** Starts the service in-process (tests); does not print or install signal handlers. */
export function startPolicyService(args: readonly string[]) {
  return startService(policyMainOptions(args));
}

/** `serve:policy` as a command (help, README, `rdpo serve policy`). */
export const POLICY_COMMAND = serviceCommand(policyMainOptions());

if (import.meta.main) await runCommand(POLICY_COMMAND);
