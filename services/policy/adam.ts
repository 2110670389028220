/**
 * Adam / AdamW on a fixed list of named tfjs variables (the LoRA adapter), with state that can be
 * exported and restored exactly, so a resumed run continues bit-identically (issue 6).
 *
 * Update (PyTorch's torch.optim.AdamW with decoupled weight decay, which D3PO and the diffusers LoRA
 * scripts use): p <- p - lr * wd * p; m <- b1 m + (1 - b1) g; v <- b2 v + (1 - b2) g^2;
 * p <- p - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps).
 */
import * as tf from "@tensorflow/tfjs-core";
import { InvalidArgumentError } from "../../lib/errors.ts";

export interface AdamConfig {
  learningRate: number;
  beta1: number;
  beta2: number;
  epsilon: number;
  weightDecay: number;
  /** Clip the global gradient norm to this value; 0 disables clipping. */
  maxGradNorm: number;
}

/** Defaults: lr 3e-5 (RDPO_SPEC.md section 5), PyTorch's betas and eps, no decay, no clipping. */
export const DEFAULT_ADAM: Readonly<AdamConfig> = Object.freeze({
  learningRate: 3e-5,
  beta1: 0.9,
  beta2: 0.999,
  epsilon: 1e-8,
  weightDecay: 0,
  maxGradNorm: 0,
});

/** Fills unset (0) fields of a proto OptimizerConfig with defaults and validates the result. */
export function resolveAdamConfig(partial: Partial<AdamConfig>, field = "optimizer"): AdamConfig {
  const pick = (v: number | undefined, d: number) => (v === undefined || v === 0 ? d : v);
  const c: AdamConfig = {
    learningRate: pick(partial.learningRate, DEFAULT_ADAM.learningRate),
    beta1: pick(partial.beta1, DEFAULT_ADAM.beta1),
    beta2: pick(partial.beta2, DEFAULT_ADAM.beta2),
    epsilon: pick(partial.epsilon, DEFAULT_ADAM.epsilon),
    weightDecay: partial.weightDecay ?? 0,
    maxGradNorm: partial.maxGradNorm ?? 0,
  };
  const check = (ok: boolean, name: string, what: string, v: number) => {
    if (!ok) throw new InvalidArgumentError(`${field}.${name}`, `${what}, got ${v}`);
  };
  check(
    Number.isFinite(c.learningRate) && c.learningRate > 0,
    "learning_rate",
    "must be > 0",
    c.learningRate,
  );
  check(c.beta1 >= 0 && c.beta1 < 1, "beta1", "must lie in [0, 1)", c.beta1);
  check(c.beta2 >= 0 && c.beta2 < 1, "beta2", "must lie in [0, 1)", c.beta2);
  check(Number.isFinite(c.epsilon) && c.epsilon > 0, "epsilon", "must be > 0", c.epsilon);
  check(Number.isFinite(c.weightDecay) && c.weightDecay >= 0, "weight_decay", "must be >= 0", c.weightDecay);
  check(Number.isFinite(c.maxGradNorm) && c.maxGradNorm >= 0, "max_grad_norm", "must be >= 0", c.maxGradNorm);
  return c;
}

/** Exported state: moments by variable name, and the step count. */
export interface AdamState {
  step: number;
  /** name -> {m, v}, float32, each the variable's size. */
  moments: Map<string, { m: Float32Array; v: Float32Array }>;
}

export class AdamOptimizer {
  #step = 0;
  readonly #m = new Map<string, tf.Variable>();
  readonly #v = new Map<string, tf.Variable>();

  /** `params`: name -> trainable variable; the names are the keys of gradients and of the state. */
  constructor(readonly params: ReadonlyMap<string, tf.Variable>) {
    for (const [name, p] of params) {
      this.#m.set(name, tf.variable(tf.zerosLike(p), false));
      this.#v.set(name, tf.variable(tf.zerosLike(p), false));
    }
  }

  get step(): number {
    return this.#step;
  }

  /** The global L2 norm of the gradients (read back asynchronously: WebGPU cannot dataSync). */
  static async globalNorm(grads: ReadonlyMap<string, tf.Tensor>): Promise<number> {
    const total = tf.tidy(() => {
      let sum = tf.scalar(0);
      for (const g of grads.values()) sum = tf.add(sum, tf.sum(tf.square(g)));
      return sum;
    });
    try {
      return Math.sqrt((await total.data())[0]);
    } finally {
      total.dispose();
    }
  }

  /**
   * Applies one update from `grads` (name -> gradient, every parameter present). Returns the
   * gradient norm before clipping.
   */
  async apply(grads: ReadonlyMap<string, tf.Tensor>, config: AdamConfig): Promise<number> {
    for (const name of this.params.keys()) {
      const g = grads.get(name);
      if (!g) throw new InvalidArgumentError("gradients", `missing gradient for "${name}"`);
      const p = this.params.get(name)!;
      if (g.size !== p.size) {
        throw new InvalidArgumentError(`gradients.${name}`, `expected ${p.size} values, got ${g.size}`);
      }
    }
    for (const name of grads.keys()) {
      if (!this.params.has(name)) throw new InvalidArgumentError("gradients", `unknown parameter "${name}"`);
    }
    const norm = await AdamOptimizer.globalNorm(grads);
    if (!Number.isFinite(norm)) {
      throw new InvalidArgumentError(
        "gradients",
        `gradient norm is ${norm}; refusing to apply a non-finite update`,
      );
    }
    const clip = config.maxGradNorm > 0 && norm > config.maxGradNorm ? config.maxGradNorm / (norm + 1e-6) : 1;
    this.#step += 1;
    const t = this.#step;
    const bc1 = 1 - config.beta1 ** t;
    const bc2 = 1 - config.beta2 ** t;
    tf.tidy(() => {
      for (const [name, p] of this.params) {
        const g0 = tf.reshape(grads.get(name)!, p.shape);
        const g = clip === 1 ? g0 : tf.mul(g0, clip);
        const m = this.#m.get(name)!;
        const v = this.#v.get(name)!;
        const mNew = tf.add(tf.mul(m, config.beta1), tf.mul(g, 1 - config.beta1));
        const vNew = tf.add(tf.mul(v, config.beta2), tf.mul(tf.square(g), 1 - config.beta2));
        m.assign(mNew);
        v.assign(vNew);
        let pNew: tf.Tensor = config.weightDecay > 0
          ? tf.mul(p, 1 - config.learningRate * config.weightDecay)
          : p;
        const denom = tf.add(tf.sqrt(tf.div(vNew, bc2)), config.epsilon);
        pNew = tf.sub(pNew, tf.mul(tf.div(tf.div(mNew, bc1), denom), config.learningRate));
        p.assign(pNew);
      }
    });
    return norm;
  }

  async exportState(): Promise<AdamState> {
    const step = this.#step;
    const moments = new Map<string, { m: Float32Array; v: Float32Array }>();
    for (const name of this.params.keys()) {
      moments.set(name, {
        m: (await this.#m.get(name)!.data()) as Float32Array,
        v: (await this.#v.get(name)!.data()) as Float32Array,
      });
    }
    return { step, moments };
  }

  /** Restores exported state exactly; every parameter's moments must be present with its size. */
  importState(state: AdamState, field = "optimizer_state"): void {
    if (!Number.isSafeInteger(state.step) || state.step < 0) {
      throw new InvalidArgumentError(`${field}.step`, `expected an integer >= 0, got ${state.step}`);
    }
    for (const [name, p] of this.params) {
      const mv = state.moments.get(name);
      if (!mv) throw new InvalidArgumentError(field, `missing moments for "${name}"`);
      if (mv.m.length !== p.size || mv.v.length !== p.size) {
        throw new InvalidArgumentError(`${field}.${name}`, `expected ${p.size} values per moment`);
      }
    }
    for (const [name, p] of this.params) {
      const mv = state.moments.get(name)!;
      tf.tidy(() => {
        this.#m.get(name)!.assign(tf.tensor(mv.m, p.shape));
        this.#v.get(name)!.assign(tf.tensor(mv.v, p.shape));
      });
    }
    this.#step = state.step;
  }

  /** Zeroes the moments and the step (a fresh adapter). */
  reset(): void {
    tf.tidy(() => {
      for (const [name, p] of this.params) {
        this.#m.get(name)!.assign(tf.zerosLike(p));
        this.#v.get(name)!.assign(tf.zerosLike(p));
      }
    });
    this.#step = 0;
  }

  dispose(): void {
    for (const t of [...this.#m.values(), ...this.#v.values()]) t.dispose();
  }
}
