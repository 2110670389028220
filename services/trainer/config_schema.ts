/** The run config's schema: every key of RDPO_SPEC.md with its type, range and default. */
import { EPOCH_STRUCTURES } from "./epoch.ts";
import { type CustomField, type Field, joinPath, type StringField, validateField } from "./schema.ts";
import { REPORT_TARGETS, RPC_NAMES } from "./config_types.ts";
import { METHOD_NAMES } from "./presets.ts";

const ADDRESS_PATTERN =
  /^(?:(?:dns:\/\/\/|ipv4:|ipv6:)?(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):\d{1,5}|unix:.+)$/;
const ADDRESS_DOC = `an address "host:port" (or "dns:///host:port", "unix:/path")`;
const SCORER_PATTERN = /^[A-Za-z0-9_.-]+(?:@[A-Za-z0-9_.-]+)?$/;
const SCORER_DOC = `a scorer name, alias or "name@version"`;

/**
 * services.policy: one address, or a list of distinct addresses (data-parallel replicas). A single
 * "dns:///name:port" also means replicas: the name's A records (a Kubernetes headless Service).
 */
function policyAddressField(): CustomField {
  const one: StringField = { kind: "string", pattern: ADDRESS_PATTERN, patternDoc: ADDRESS_DOC };
  return {
    kind: "custom",
    default: "127.0.0.1:50052",
    doc: `one address, a list of replica addresses, or "dns:///name:port" whose A records are the replicas`,
    typeDoc: "address or list of addresses",
    validate(value, path, issues) {
      if (!Array.isArray(value)) return validateField(one, value, path, issues);
      if (value.length === 0) issues.push({ path, message: "needs at least 1 address" });
      const seen = new Set<unknown>();
      value.forEach((v, i) => {
        validateField(one, v, joinPath(path, i), issues);
        if (seen.has(v)) {
          issues.push({ path: joinPath(path, i), message: `duplicate address ${JSON.stringify(v)}` });
        }
        seen.add(v);
      });
      return value;
    },
  };
}

/** A list of distinct non-negative step numbers, or "all". */
function stepListField(doc: string): CustomField {
  return {
    kind: "custom",
    nullable: true,
    default: null,
    doc,
    typeDoc: `list of distinct integers or "all"`,
    validate(value, path, issues) {
      if (value === "all") return "all";
      if (!Array.isArray(value)) {
        issues.push({ path, message: `expected a list of integers or "all", got ${JSON.stringify(value)}` });
        return undefined;
      }
      if (value.length === 0) issues.push({ path, message: `needs at least 1 step (or "all")` });
      const seen = new Set<number>();
      value.forEach((v, i) => {
        if (!Number.isSafeInteger(v) || (v as number) < 0) {
          issues.push({
            path: joinPath(path, i),
            message: `expected a non-negative integer, got ${JSON.stringify(v)}`,
          });
        } else if (seen.has(v as number)) {
          issues.push({ path: joinPath(path, i), message: `duplicate step ${v}` });
        } else seen.add(v as number);
      });
      return value;
    },
  };
}

const scorerField: Field = {
  kind: "object",
  fields: {
    name: { kind: "string", required: true, pattern: SCORER_PATTERN, patternDoc: SCORER_DOC },
    weight: { kind: "number", default: 1, doc: "weight in the summed step reward (negative to minimise)" },
  },
};

const deadlineFields: Record<string, Field> = {
  default: {
    kind: "number",
    integer: true,
    min: 1,
    default: 300_000,
    doc: "deadline of every RPC without its own (ms)",
  },
};
for (const name of RPC_NAMES) {
  deadlineFields[name] = { kind: "number", integer: true, min: 1, nullable: true, default: null };
}

/** The whole run config. Defaults are RDPO_SPEC.md section 5 unless a doc says otherwise. */
export const SCHEMA: Field = {
  kind: "object",
  fields: {
    method: {
      kind: "enum",
      values: METHOD_NAMES,
      default: "rdpo",
      doc: "preset whose values sit under the user's keys (presets.ts)",
    },
    mode: { kind: "enum", values: ["train", "best_of_n"], default: "train" },
    run_dir: {
      kind: "string",
      nullable: true,
      default: null,
      doc: "output folder (null: runs/<method>-<hash8>)",
    },
    seed: {
      kind: "number",
      integer: true,
      min: 0,
      default: 0,
      doc: "run seed: every noise stream and the adapter init derive from it",
    },
    progress: { kind: "enum", values: ["auto", "bar", "lines", "none"], default: "auto" },
    report_to: {
      kind: "enum",
      values: REPORT_TARGETS,
      default: "none",
      doc: "also write metrics for a viewer: tensorboard = event files in <run_dir>/tensorboard",
    },
    sampling: {
      kind: "object",
      fields: {
        sampler: { kind: "enum", values: ["ddim", "ddpm"], default: "ddim" },
        num_inference_steps: { kind: "number", integer: true, min: 1, max: 1000, default: 20, doc: "T" },
        eta: { kind: "number", min: 0, default: 1.0, doc: "DDIM eta; > 0 to train (spec section 1)" },
        guidance_scale: { kind: "number", min: 0, default: 5.0, doc: "classifier-free guidance w (1 = off)" },
        reduction: {
          kind: "enum",
          values: ["mean", "sum"],
          default: "mean",
          doc: "log-prob reduction (section 2)",
        },
      },
    },
    preference: {
      kind: "object",
      fields: {
        estimator: { kind: "enum", values: ["final", "q", "delta_q"], default: "delta_q", doc: "section 3" },
        pairing: {
          kind: "enum",
          values: ["shared_parent", "independent"],
          default: "shared_parent",
          doc: "section 4",
        },
        num_candidates: { kind: "number", integer: true, min: 2, default: 2, doc: "K candidates per parent" },
        continue_from: { kind: "enum", values: ["winner", "random"], default: "winner" },
        min_margin: {
          kind: "number",
          min: 0,
          default: 0,
          doc: "pairs with a smaller reward gap are skipped",
        },
        finetune_steps: stepListField("trained steps in the paper's numbering (T..1, T = first step)"),
        finetune_step_indices: stepListField("trained steps as 0-based step_index (0 = first step)"),
      },
    },
    loss: {
      kind: "object",
      fields: {
        kind: { kind: "enum", values: ["dpo", "rdpo", "diffusion_dpo"], default: "rdpo", doc: "section 5" },
        beta: { kind: "number", min: 0, exclusiveMin: true, default: 0.1 },
        lambda: { kind: "number", min: 0, default: 100, doc: "rdpo penalty weight (0 = RDPO*)" },
        ratio_clamp: {
          kind: "number",
          min: 0,
          max: 1,
          exclusiveMax: true,
          default: 0,
          doc: "dpo: clamp exp(h) to [1-e, 1+e]; 0 = off",
        },
      },
    },
    lora: {
      kind: "object",
      fields: {
        rank: { kind: "number", integer: true, min: 1, default: 4 },
        alpha: { kind: "number", min: 0, exclusiveMin: true, default: 4, doc: "scale = alpha / rank" },
        target_modules: {
          kind: "list",
          item: { kind: "string", pattern: /^[A-Za-z0-9_.]+$/, patternDoc: "a module name like to_q" },
          minLength: 1,
          unique: true,
          default: ["to_q", "to_k", "to_v", "to_out.0"],
        },
      },
    },
    optimizer: {
      kind: "object",
      fields: {
        lr: { kind: "number", min: 0, exclusiveMin: true, default: 3e-5 },
        betas: {
          kind: "list",
          item: { kind: "number", min: 0, max: 1, exclusiveMax: true },
          minLength: 2,
          maxLength: 2,
          default: [0.9, 0.999],
        },
        eps: { kind: "number", min: 0, exclusiveMin: true, default: 1e-8 },
        // D3PO's config/base.py (the code RDPO builds on): adam_weight_decay 1e-4, max_grad_norm 1.0.
        weight_decay: { kind: "number", min: 0, default: 1e-4 },
        max_grad_norm: { kind: "number", min: 0, default: 1.0, doc: "global clip; 0 = off" },
      },
    },
    training: {
      kind: "object",
      fields: {
        steps: {
          kind: "number",
          integer: true,
          min: 1,
          nullable: true,
          default: null,
          doc: "training iterations (one prompt batch each); 100 when neither steps nor epochs is set",
        },
        epochs: {
          kind: "number",
          integer: true,
          min: 1,
          nullable: true,
          default: null,
          doc: "passes over the prompts",
        },
        prompt_batch_size: {
          kind: "number",
          integer: true,
          min: 1,
          default: 2,
          doc: "prompts per iteration",
        },
        // The epoch structure (epoch.ts; RDPO_SPEC.md section 6). null: resolved from `structure`.
        structure: {
          kind: "enum",
          values: [...EPOCH_STRUCTURES],
          default: "per_batch",
          doc: "per_batch (one update per fresh batch) or d3po (unset epoch keys take D3PO's values)",
        },
        sample_batches_per_epoch: {
          kind: "number",
          integer: true,
          min: 1,
          nullable: true,
          default: null,
          doc: "prompt batches sampled before the epoch's updates (null: 1, or D3PO's 2)",
        },
        train_batch_size: {
          kind: "number",
          integer: true,
          min: 1,
          nullable: true,
          default: null,
          doc: "pairs per minibatch (null: all the epoch's pairs in one step, or D3PO's one trajectory pair)",
        },
        gradient_accumulation_steps: {
          kind: "number",
          integer: true,
          min: 1,
          nullable: true,
          default: null,
          doc: "minibatches per optimizer step (null: 1)",
        },
        num_inner_epochs: {
          kind: "number",
          integer: true,
          min: 1,
          nullable: true,
          default: null,
          doc: "passes over the epoch's pairs (null: 1)",
        },
      },
    },
    prompts: {
      kind: "object",
      fields: {
        file: { kind: "string", default: "services/trainer/prompts/animals.txt" },
        format: {
          kind: "enum",
          values: ["auto", "lines", "jsonl"],
          default: "auto",
          doc: "auto: .jsonl -> jsonl",
        },
        eval_file: { kind: "string", nullable: true, default: null },
        eval_fraction: {
          kind: "number",
          min: 0,
          max: 1,
          exclusiveMax: true,
          default: 0,
          doc: "held-out share; 0 without eval_file: evaluate on the training prompts (as the paper)",
        },
        shuffle: { kind: "boolean", default: true },
        shuffle_seed: { kind: "number", integer: true, min: 0, default: 0 },
      },
    },
    scorers: {
      kind: "list",
      item: scorerField,
      minLength: 1,
      required: true,
      doc: "step reward = sum of weight * score",
    },
    eval: {
      kind: "object",
      fields: {
        every: {
          kind: "number",
          integer: true,
          min: 0,
          default: 0,
          doc: "steps between evaluations; 0 = none between",
        },
        at_start: {
          kind: "boolean",
          default: true,
          doc: "evaluate the base model first (Table 8 'base' row)",
        },
        at_end: { kind: "boolean", default: true },
        samples_per_prompt: { kind: "number", integer: true, min: 1, default: 5, doc: "spec section 6" },
        max_prompts: { kind: "number", integer: true, min: 1, nullable: true, default: null },
        scorers: {
          kind: "list",
          item: { kind: "string", pattern: SCORER_PATTERN, patternDoc: SCORER_DOC },
          unique: true,
          default: [],
          doc: "empty: the training scorers",
        },
        seed: {
          kind: "number",
          integer: true,
          min: 0,
          nullable: true,
          default: null,
          doc: "null: the run seed",
        },
      },
    },
    best_of_n: {
      kind: "object",
      fields: {
        num_candidates: { kind: "number", integer: true, min: 2, default: 4, doc: "N candidates per step" },
        estimator: { kind: "enum", values: ["q", "delta_q"], default: "delta_q", doc: "spec section 7" },
        samples_per_prompt: { kind: "number", integer: true, min: 1, default: 5 },
      },
    },
    services: {
      kind: "object",
      fields: {
        policy: policyAddressField(),
        reference: {
          kind: "string",
          nullable: true,
          default: null,
          pattern: ADDRESS_PATTERN,
          patternDoc: ADDRESS_DOC,
          doc: "separate frozen reference process; null: the policy with its adapter disabled",
        },
        reward: {
          kind: "string",
          default: "127.0.0.1:50051",
          pattern: ADDRESS_PATTERN,
          patternDoc: ADDRESS_DOC,
        },
      },
    },
    rpc: {
      kind: "object",
      fields: {
        deadline_ms: { kind: "object", fields: deadlineFields },
        retry: {
          kind: "object",
          fields: {
            max_attempts: { kind: "number", integer: true, min: 1, default: 5 },
            initial_backoff_ms: { kind: "number", min: 0, default: 200 },
            max_backoff_ms: { kind: "number", min: 0, default: 10_000 },
            multiplier: { kind: "number", min: 1, default: 2 },
            jitter: { kind: "number", min: 0, max: 1, default: 0.2 },
            max_total_ms: { kind: "number", min: 0, default: 120_000 },
          },
        },
        max_message_bytes: { kind: "number", integer: true, min: 1024, default: 64 * 1024 * 1024 },
        session_stream: {
          kind: "boolean",
          default: true,
          doc: "unary calls as messages on one Session stream per service (unary when the server lacks it)",
        },
      },
    },
    checkpoint: {
      kind: "object",
      fields: {
        every: {
          kind: "number",
          integer: true,
          min: 0,
          default: 50,
          doc: "steps between checkpoints; 0 = end only",
        },
        keep_last: { kind: "number", integer: true, min: 1, default: 3 },
      },
    },
    report: {
      kind: "object",
      fields: {
        grid_prompts: { kind: "number", integer: true, min: 1, default: 4, doc: "rows of the sample grid" },
        grid_samples: { kind: "number", integer: true, min: 1, default: 4, doc: "samples per row and model" },
        image_size: { kind: "number", integer: true, min: 16, default: 128, doc: "grid cell side (px)" },
      },
    },
  },
};

/** The schema default of a dotted path. */
export function defaultAt(path: string): unknown {
  let field: Field | undefined = SCHEMA;
  for (const part of path.split(".")) {
    if (!field || field.kind !== "object") return undefined;
    field = field.fields[part];
  }
  return field && "default" in field ? field.default : undefined;
}
