/**
 * The trainer's run config: one YAML or JSON document, validated against SCHEMA below (every
 * option of RDPO_SPEC.md is a key, with the spec's defaults), after the method preset
 * (presets.ts) is laid under the user's keys. Resolution order: schema defaults < preset < user.
 *
 * Step numbering (RDPO_SPEC.md section 4): our `step_index` is 0-based in sampling order,
 * 0 = the first, noisiest step x_T -> x_{T-1} (the policy proto's convention). The paper counts
 * steps down: its "step t" is the transition x_t -> x_{t-1}, so "step 20" of T = 20 is the first
 * step and "step 1" the last. Hence `step_index = T - paper_step`, and the paper's fine-tune steps
 * 20, 16, 12, 8, 4 are step indices 0, 4, 8, 12, 16 (5 of 20, uniformly spaced, starting at the
 * noisiest step). `preference.finetune_steps` takes the paper's numbering,
 * `preference.finetune_step_indices` ours; the resolved config always holds the indices.
 */
import {
  EPOCH_KEYS,
  EPOCH_STRUCTURES,
  type EpochConfigKeys,
  epochSettings,
  isPerBatch,
  resolveEpochKeys,
} from "./epoch.ts";
import { createHash } from "node:crypto";
import { parse as parseYaml } from "yaml";
import {
  canonicalJson,
  type ConfigIssue,
  type CustomField,
  deepMerge,
  describeSchema,
  type Field,
  isPlainObject,
  joinPath,
  leafPaths,
  type StringField,
  suggest,
  throwIfIssues,
  validateField,
} from "./schema.ts";
import { METHOD_NAMES, type MethodName, PRESETS } from "./presets.ts";

export type Mode = "train" | "best_of_n";
export type SamplerKind = "ddim" | "ddpm";
export type Reduction = "mean" | "sum";
export type Estimator = "final" | "q" | "delta_q";
export type Pairing = "shared_parent" | "independent";
export type ContinueFrom = "winner" | "random";
export type LossKind = "dpo" | "rdpo" | "diffusion_dpo";
export type PromptFormat = "auto" | "lines" | "jsonl";
export type ProgressMode = "auto" | "bar" | "lines" | "none";

// report_to (issue 16): where metrics go besides metrics.jsonl. "tensorboard" writes event files
// (scalars and the before/after grid) into <run_dir>/tensorboard (report/tensorboard.ts).
export const REPORT_TARGETS = ["none", "tensorboard"] as const;
export type ReportTarget = typeof REPORT_TARGETS[number];

/** A reward scorer as the reward service serves it ("name", an alias, or "name@version"). */
export interface ScorerRef {
  name: string;
  weight: number;
}

/** The names of the RPCs that have their own deadline key (null = rpc.deadline_ms.default). */
export const RPC_NAMES = [
  "get_info",
  "encode_prompts",
  "sample_candidates",
  "predict_noise",
  "decode",
  "generate",
  "log_ratios",
  "train_step",
  "get_adapter",
  "load_adapter",
  "score",
] as const;
export type RpcName = typeof RPC_NAMES[number];

export interface RetryConfig {
  max_attempts: number;
  initial_backoff_ms: number;
  max_backoff_ms: number;
  multiplier: number;
  /** Fraction of each delay that is randomised away (0 = deterministic delays). */
  jitter: number;
  /** Give up when the next attempt would start later than this after the first (ms). */
  max_total_ms: number;
}

/** The validated, fully resolved run config (snake_case, exactly the file's keys). */
export interface RunConfig {
  method: MethodName;
  mode: Mode;
  run_dir: string | null;
  seed: number;
  progress: ProgressMode;
  report_to: ReportTarget;
  sampling: {
    sampler: SamplerKind;
    num_inference_steps: number;
    eta: number;
    guidance_scale: number;
    reduction: Reduction;
  };
  preference: {
    estimator: Estimator;
    pairing: Pairing;
    num_candidates: number;
    continue_from: ContinueFrom;
    min_margin: number;
    /** Paper numbering; always null once resolved (see finetune_step_indices). */
    finetune_steps: number[] | "all" | null;
    /** 0-based step indices that are trained, ascending (resolved). */
    finetune_step_indices: number[];
  };
  loss: { kind: LossKind; beta: number; lambda: number; ratio_clamp: number };
  lora: { rank: number; alpha: number; target_modules: string[] };
  optimizer: {
    lr: number;
    betas: [number, number];
    eps: number;
    weight_decay: number;
    max_grad_norm: number;
  };
  training: { steps: number | null; epochs: number | null; prompt_batch_size: number } & EpochConfigKeys;
  prompts: {
    file: string;
    format: PromptFormat;
    eval_file: string | null;
    eval_fraction: number;
    shuffle: boolean;
    shuffle_seed: number;
  };
  scorers: ScorerRef[];
  eval: {
    every: number;
    at_start: boolean;
    at_end: boolean;
    samples_per_prompt: number;
    max_prompts: number | null;
    /** Scorer refs; resolved to the training scorers' names when given empty. */
    scorers: string[];
    seed: number | null;
  };
  best_of_n: { num_candidates: number; estimator: "q" | "delta_q"; samples_per_prompt: number };
  /** policy: one address (one replica, today's path) or a list (data-parallel replicas, replicas.ts). */
  services: { policy: string | string[]; reference: string | null; reward: string };
  rpc: {
    deadline_ms: { default: number } & Record<RpcName, number | null>;
    retry: RetryConfig;
    max_message_bytes: number;
  };
  checkpoint: { every: number; keep_last: number };
  report: { grid_prompts: number; grid_samples: number; image_size: number };
}

// ---------------------------------------------------------------------------------------------
// Schema

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

// ---------------------------------------------------------------------------------------------
// Step numbering

/** The paper's step t (x_t -> x_{t-1}, T = first) as our 0-based step_index. */
export function paperStepToIndex(paperStep: number, numInferenceSteps: number): number {
  return numInferenceSteps - paperStep;
}

/** Our 0-based step_index as the paper's step number. */
export function indexToPaperStep(stepIndex: number, numInferenceSteps: number): number {
  return numInferenceSteps - stepIndex;
}

/**
 * The default trained steps: `count` uniformly spaced indices starting at the first step,
 * round(i * T / count). T = 20 gives 0, 4, 8, 12, 16 = the paper's 20, 16, 12, 8, 4.
 */
export function defaultFineTuneStepIndices(numInferenceSteps: number, count = 5): number[] {
  if (numInferenceSteps <= count) return Array.from({ length: numInferenceSteps }, (_, i) => i);
  const out = new Set<number>();
  for (let i = 0; i < count; i++) out.add(Math.round((i * numInferenceSteps) / count));
  return [...out].sort((a, b) => a - b);
}

// ---------------------------------------------------------------------------------------------
// Parsing and resolution

/** Parses YAML (a superset of JSON) into a raw object; errors name the line. */
export function parseConfigText(text: string, source = "config"): Record<string, unknown> {
  let raw: unknown;
  try {
    raw = parseYaml(text, { prettyErrors: true, uniqueKeys: true });
  } catch (e) {
    throwIfIssues([{ path: "", message: `${source}: not valid YAML/JSON: ${(e as Error).message}` }]);
  }
  if (raw === null || raw === undefined) raw = {};
  if (!isPlainObject(raw)) {
    throwIfIssues([{ path: "", message: `${source}: expected a mapping of keys at the top level` }]);
  }
  return raw as Record<string, unknown>;
}

export interface ResolveResult {
  config: RunConfig;
  /** Dotted paths the user set explicitly (not from the preset or defaults). */
  userPaths: string[];
}

/** Path -> value lookup in a raw object. */
function getPath(obj: unknown, path: string): unknown {
  let cur = obj;
  for (const part of path.split(".")) {
    if (!isPlainObject(cur)) return undefined;
    cur = cur[part];
  }
  return cur;
}

/**
 * Validates a raw config object (already parsed): preset under user keys, schema defaults,
 * cross-field rules. Throws ConfigError listing every problem.
 */
export function resolveConfig(raw: Record<string, unknown>): ResolveResult {
  const issues: ConfigIssue[] = [];
  const methodValue = raw.method ?? "rdpo";
  let preset: Record<string, unknown> = {};
  if (typeof methodValue === "string" && methodValue in PRESETS) {
    preset = PRESETS[methodValue as MethodName].values;
  } else {
    const hint = typeof methodValue === "string" ? suggest(methodValue, METHOD_NAMES) : undefined;
    issues.push({
      path: "method",
      message: `${JSON.stringify(methodValue)} is not one of ${METHOD_NAMES.join(", ")}` +
        (hint ? ` (did you mean "${hint}"?)` : ""),
    });
    throwIfIssues(issues);
  }
  const merged = deepMerge(preset, raw) as Record<string, unknown>;
  const config = validateField(SCHEMA, merged, "", issues) as RunConfig;
  throwIfIssues(issues);
  const userPaths = leafPaths(raw);
  checkCrossFieldRules(config, raw, issues);
  throwIfIssues(issues);
  resolveDerivedValues(config);
  return { config, userPaths };
}

/** The schema default of a dotted path. */
export function defaultAt(path: string): unknown {
  let field: Field | undefined = SCHEMA;
  for (const part of path.split(".")) {
    if (!field || field.kind !== "object") return undefined;
    field = field.fields[part];
  }
  return field && "default" in field ? field.default : undefined;
}

/** Where a value came from, for error messages. */
function origin(path: string, raw: Record<string, unknown>, method: string): string {
  return getPath(raw, path) !== undefined ? "set in the config" : `set by the ${method} preset`;
}

function checkCrossFieldRules(
  c: RunConfig,
  raw: Record<string, unknown>,
  issues: ConfigIssue[],
): void {
  const m = c.method;
  // A value that the chosen options ignore must keep its default: setting it is a mistake.
  const unused = (path: string, value: unknown, why: string) => {
    const def = defaultAt(path);
    if (JSON.stringify(value) !== JSON.stringify(def)) {
      issues.push({
        path,
        message: `${JSON.stringify(value)} (${origin(path, raw, m)}) has no effect: ${why}; ` +
          `remove it or set it to ${JSON.stringify(def)}`,
      });
    }
  };
  const T = c.sampling.num_inference_steps;

  // RDPO_SPEC.md section 1: eta = 0 makes sigma_t = 0 and log pi undefined.
  if (c.sampling.sampler === "ddim" && c.sampling.eta <= 0) {
    issues.push({
      path: "sampling.eta",
      message: c.mode === "train"
        ? "must be > 0 to train: eta = 0 makes sigma_t = 0 and the step log-probability undefined " +
          "(RDPO_SPEC.md section 1)"
        : "must be > 0 for best-of-N: with eta = 0 every candidate of a step is the same",
    });
  }
  if (c.sampling.sampler === "ddpm") unused("sampling.eta", c.sampling.eta, "only the ddim sampler uses eta");

  const p = c.preference;
  if (p.pairing === "independent" && p.num_candidates !== 2) {
    issues.push({
      path: "preference.num_candidates",
      message: `${p.num_candidates}: independent pairing (D3PO) uses exactly 2 trajectories per prompt`,
    });
  }
  if (p.pairing === "independent") {
    unused(
      "preference.continue_from",
      p.continue_from,
      "independent trajectories each continue on their own",
    );
  }
  if (p.estimator === "final" && p.pairing === "shared_parent") {
    issues.push({
      path: "preference.estimator",
      message: `"final" needs pairing "independent": with shared_parent the candidates of a step have no ` +
        `final image of their own (use "q" or "delta_q", RDPO_SPEC.md section 3)`,
    });
  }
  if (p.finetune_steps !== null && p.finetune_step_indices !== null) {
    issues.push({
      path: "preference.finetune_steps",
      message: "set either finetune_steps (paper numbering) or finetune_step_indices (0-based), not both",
    });
  }
  if (Array.isArray(p.finetune_steps)) {
    p.finetune_steps.forEach((s, i) => {
      if (s < 1 || s > T) {
        issues.push({
          path: `preference.finetune_steps[${i}]`,
          message: `${s} is out of range: paper steps run from ${T} (first) to 1 (last) for T = ${T}`,
        });
      }
    });
  }
  if (Array.isArray(p.finetune_step_indices)) {
    p.finetune_step_indices.forEach((s, i) => {
      if (s >= T) {
        issues.push({
          path: `preference.finetune_step_indices[${i}]`,
          message: `${s} is out of range: step indices run from 0 (first) to ${T - 1} (last) for T = ${T}`,
        });
      }
    });
  }

  const l = c.loss;
  if (l.kind !== "rdpo") {
    unused("loss.lambda", l.lambda, `only the rdpo loss has a penalty (loss.kind is ${l.kind})`);
  }
  if (l.kind !== "dpo") {
    unused("loss.ratio_clamp", l.ratio_clamp, `only the dpo loss clamps the ratio (loss.kind is ${l.kind})`);
  }
  if (l.kind === "diffusion_dpo") {
    if (p.pairing !== "independent") {
      issues.push({
        path: "loss.kind",
        message: `diffusion_dpo trains on pairs of final images: it needs preference.pairing "independent"`,
      });
    }
    if (p.estimator !== "final") {
      issues.push({
        path: "loss.kind",
        message: `diffusion_dpo ranks final images: it needs preference.estimator "final"`,
      });
    }
  }

  if (c.training.steps !== null && c.training.epochs !== null) {
    issues.push({
      path: "training.steps",
      message: "set either training.steps or training.epochs, not both",
    });
  }
  if (c.prompts.eval_file !== null && c.prompts.eval_fraction > 0) {
    issues.push({
      path: "prompts.eval_fraction",
      message: "set either prompts.eval_file or prompts.eval_fraction, not both",
    });
  }
  const r = c.rpc.retry;
  if (r.initial_backoff_ms > r.max_backoff_ms) {
    issues.push({
      path: "rpc.retry.initial_backoff_ms",
      message: `${r.initial_backoff_ms} is larger than rpc.retry.max_backoff_ms (${r.max_backoff_ms})`,
    });
  }
  c.scorers.forEach((s, i) => {
    if (s.weight === 0) issues.push({ path: `scorers[${i}].weight`, message: "must not be 0" });
  });
  const names = new Set<string>();
  c.scorers.forEach((s, i) => {
    if (names.has(s.name)) {
      issues.push({ path: `scorers[${i}].name`, message: `duplicate scorer "${s.name}"` });
    }
    names.add(s.name);
  });
}

/** Fills the values that depend on others; idempotent (resolving a resolved config changes nothing). */
function resolveDerivedValues(c: RunConfig): void {
  const T = c.sampling.num_inference_steps;
  // Before resolution finetune_step_indices may still be "all" or null, as written.
  const p = c.preference as Omit<RunConfig["preference"], "finetune_step_indices"> & {
    finetune_step_indices: number[] | "all" | null;
  };
  let indices: number[];
  if (p.finetune_steps === "all" || p.finetune_step_indices === "all") {
    indices = Array.from({ length: T }, (_, i) => i);
  } else if (Array.isArray(p.finetune_steps)) {
    indices = p.finetune_steps.map((s) => paperStepToIndex(s, T));
  } else if (Array.isArray(p.finetune_step_indices)) {
    indices = [...p.finetune_step_indices];
  } else {
    indices = defaultFineTuneStepIndices(T);
  }
  p.finetune_steps = null;
  p.finetune_step_indices = indices.sort((a, b) => a - b);
  if (c.training.steps === null && c.training.epochs === null) c.training.steps = 100;
  resolveEpochKeys(c.training, indices.length);
  if (c.eval.scorers.length === 0) c.eval.scorers = c.scorers.map((s) => s.name);
}

/** Parses and validates config text (YAML or JSON). */
export function parseConfig(text: string, source = "config"): RunConfig {
  return resolveConfig(parseConfigText(text, source)).config;
}

/** Reads and validates a config file. */
export async function loadConfigFile(path: string): Promise<RunConfig> {
  return parseConfig(await Deno.readTextFile(path), path);
}

/** The resolved config as canonical JSON (sorted keys): what config.json in the run folder holds. */
export function canonicalConfigJson(config: RunConfig): string {
  return canonicalJson(config);
}

/**
 * The parts of the config that decide what a training step computes. Left out, so a run can be
 * resumed against restarted services or extended: service addresses, RPC deadlines/retries, the
 * run folder, the training length, checkpoint cadence, evaluation, report and progress display.
 */
export function hashedConfigSubset(config: RunConfig): Record<string, unknown> {
  const {
    services: _s,
    rpc: _r,
    run_dir: _d,
    checkpoint: _c,
    eval: _e,
    report: _p,
    progress: _g,
    report_to: _t,
    ...rest
  } = config;
  const { steps: _st, epochs: _ep, ...training } = config.training;
  // The epoch keys at their per-batch defaults are left out, so runs made before they existed resume.
  if (isPerBatch(epochSettings(config)) && training.structure === "per_batch") {
    const t = training as Partial<typeof training>;
    for (const k of EPOCH_KEYS) delete t[k];
  }
  return { ...rest, training };
}

/** sha256 (hex) of the canonical JSON of hashedConfigSubset: the identity checked on resume. */
export function configHash(config: RunConfig): string {
  return createHash("sha256").update(canonicalJson(hashedConfigSubset(config))).digest("hex");
}

/** The run folder: run_dir, or runs/<method>-<first 8 hex of the config hash>. */
export function resolveRunDir(config: RunConfig): string {
  return config.run_dir ?? `runs/${config.method}-${configHash(config).slice(0, 8)}`;
}

/** The deadline of one RPC in milliseconds. */
export function deadlineMs(config: RunConfig, rpc: RpcName): number {
  return config.rpc.deadline_ms[rpc] ?? config.rpc.deadline_ms.default;
}

/** Training iterations of the run: training.steps, or epochs * ceil(train prompts / batch size). */
export function totalSteps(config: RunConfig, trainPromptCount: number): number {
  if (config.training.steps !== null) return config.training.steps;
  const perEpoch = Math.ceil(trainPromptCount / config.training.prompt_batch_size);
  return (config.training.epochs ?? 1) * perEpoch;
}

/** Every key with its type and default, one per line (for --help). */
export function describeConfigKeys(): string[] {
  return describeSchema(SCHEMA);
}
