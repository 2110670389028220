/**
 * The trainer's run config: one YAML or JSON document, validated against SCHEMA (config_schema.ts) (every
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
import { EPOCH_KEYS, epochSettings, isPerBatch } from "./epoch.ts";
import { createHash } from "node:crypto";
import { parse as parseYaml } from "yaml";
import {
  canonicalJson,
  type ConfigIssue,
  deepMerge,
  describeSchema,
  isPlainObject,
  leafPaths,
  suggest,
  throwIfIssues,
  validateField,
} from "./schema.ts";
import { METHOD_NAMES, type MethodName, PRESETS } from "./presets.ts";

export * from "./config_types.ts";
export * from "./config_steps.ts";
export { defaultAt, SCHEMA } from "./config_schema.ts";
import { SCHEMA } from "./config_schema.ts";
import { checkCrossFieldRules, resolveDerivedValues } from "./config_rules.ts";
import type { RpcName, RunConfig } from "./config_types.ts";

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
