/**
 * `deno task serve:policy`: loads a diffusers-layout model folder and serves PolicyService.
 *
 *   deno task serve:policy --model-dir models/tiny --port 50051
 *   deno task serve:policy --model-dir /models/sd15 --backend webgpu --role reference
 *
 * Every flag has an environment equivalent (POLICY_MODEL_DIR, POLICY_BACKEND, ...); see --help.
 */
import { PolicyService } from "../../gen/rdpo/v1/policy_pb.ts";
import { runService, type ServiceMainOptions, startService } from "../../lib/rpc/main.ts";
import type { FlagSpecs } from "../../lib/rpc/flags.ts";
import { BACKENDS, initBackend, parseBackendName } from "../../lib/tensor/backend.ts";
import { describeDevice } from "../../lib/tensor/limits.ts";
import { PolicyCore } from "./core.ts";
import { DEFAULT_LORA_TARGETS } from "./model/lora.ts";
import { disposePipeline, loadPipeline } from "./pipeline.ts";
import { policyService } from "./service.ts";

export const POLICY_FLAGS = {
  modelDir: {
    type: "string",
    env: ["POLICY_MODEL_DIR"],
    required: true,
    description: "diffusers-layout model folder",
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
} as const satisfies FlagSpecs;

export function policyMainOptions(args?: readonly string[]): ServiceMainOptions<typeof POLICY_FLAGS> {
  return {
    name: "policy",
    defaultPort: 50052,
    args,
    flags: POLICY_FLAGS,
    async setup(server, flags) {
      const backend = await initBackend(parseBackendName(flags.backend));
      if (backend === "webgpu") {
        // The adapter and the limits the device was created with (the tensor limit follows them).
        console.error(`policy: webgpu device ${JSON.stringify(await describeDevice())}`);
      }
      await Deno.mkdir(flags.adapterRoot, { recursive: true });
      const pipeline = await loadPipeline(flags.modelDir, { variant: flags.variant });
      pipeline.unet.gradientCheckpointing = flags.gradientCheckpointing;
      const core = new PolicyCore(pipeline, {
        role: flags.role as "policy" | "reference",
        lora: {
          rank: flags.loraRank,
          alpha: flags.loraAlpha || flags.loraRank,
          targetModules: flags.loraTargets.split(",").map((s) => s.trim()).filter(Boolean),
          seed: flags.loraSeed,
        },
        adapterRoot: flags.adapterRoot,
        maxBatch: flags.maxBatch,
        backend,
      });
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

if (import.meta.main) await runService(policyMainOptions());
