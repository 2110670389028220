/** The run config's cross-field rules and the values derived from others (config.ts runs them in order). */
import { resolveEpochKeys } from "./epoch.ts";
import { type ConfigIssue, isPlainObject } from "./schema.ts";
import type { RunConfig } from "./config_types.ts";
import { defaultAt } from "./config_schema.ts";
import { defaultFineTuneStepIndices, paperStepToIndex } from "./config_steps.ts";

/** Path -> value lookup in a raw object. */
function getPath(obj: unknown, path: string): unknown {
  let cur = obj;
  for (const part of path.split(".")) {
    if (!isPlainObject(cur)) return undefined;
    cur = cur[part];
  }
  return cur;
}

/** Where a value came from, for error messages. */
function origin(path: string, raw: Record<string, unknown>, method: string): string {
  return getPath(raw, path) !== undefined ? "set in the config" : `set by the ${method} preset`;
}

export function checkCrossFieldRules(
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
export function resolveDerivedValues(c: RunConfig): void {
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
