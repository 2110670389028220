/** The trainer's run config as types: RunConfig mirrors the file's keys (config_schema.ts validates them). */
import type { EpochConfigKeys } from "./epoch.ts";
import type { MethodName } from "./presets.ts";
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
    /** Send the unary calls over one Session stream per service (lib/rpc/session_client.ts). */
    session_stream: boolean;
  };
  checkpoint: { every: number; keep_last: number };
  report: { grid_prompts: number; grid_samples: number; image_size: number };
}
