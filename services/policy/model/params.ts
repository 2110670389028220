/**
 * Parameter registry shared by every model: each layer declares its parameters under the exact
 * PyTorch key name and shape (diffusers / transformers state-dict names), and a loader fills them
 * from safetensors one tensor at a time.
 *
 * Layout conversion happens once, at load time, so forward passes never transpose weights:
 * - `linear`: PyTorch `[out, in]` (or a 1x1 conv `[out, in, 1, 1]`) is stored as `[in, out]`, the
 *   layout `matMul(x, W)` wants;
 * - `conv`: PyTorch `[out, in, kh, kw]` is stored as `[kh, kw, in, out]`, the layout of tfjs' NHWC
 *   `conv2d` filter;
 * - `plain`: stored as is (norm scales, biases, embeddings).
 *
 * Values are `tf.Variable`s created with `trainable = false`, so `tf.variableGrads` sees only the
 * LoRA adapter unless a caller opts into full training with `setTrainable(true)`.
 */
import * as tf from "@tensorflow/tfjs-core";

export type ParamLayout = "linear" | "conv" | "plain";

/** One declared parameter. `shape` is the PyTorch shape as stored in the checkpoint. */
export class Param {
  #value: tf.Variable | null = null;

  constructor(readonly name: string, readonly shape: readonly number[], readonly layout: ParamLayout) {}

  /** The loaded value in the internal layout; throws naming the key before loading. */
  get value(): tf.Variable {
    if (!this.#value) throw new Error(`parameter "${this.name}" is not loaded`);
    return this.#value;
  }

  get loaded(): boolean {
    return this.#value !== null;
  }

  /** Element count. */
  get size(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }

  /** Sets the value from PyTorch-layout float32 data (converted to the internal layout). */
  setFromTorch(data: Float32Array, trainable = false): void {
    // The layout change runs on the host: one upload per parameter and no device kernel (on
    // WebGPU each new transpose shape would compile a shader; SD1.5 has hundreds of shapes).
    const t = tf.tensor(
      hostInternalLayout(data, this.shape, this.layout),
      internalShape(this.shape, this.layout),
    );
    this.#value?.dispose();
    this.#value = tf.variable(t, trainable);
    t.dispose();
  }

  /** The value converted back to PyTorch layout (a new tensor the caller disposes). */
  toTorch(): tf.Tensor {
    return tf.tidy(() => fromInternalLayout(this.value, this.layout, this.shape));
  }

  dispose(): void {
    this.#value?.dispose();
    this.#value = null;
  }
}

/** PyTorch layout -> internal layout (see the file comment). */
export function toInternalLayout(t: tf.Tensor, layout: ParamLayout): tf.Tensor {
  switch (layout) {
    case "plain":
      return t.clone();
    case "linear": {
      // [out, in] or a 1x1 conv's [out, in, 1, 1]
      const out = t.shape[0];
      return tf.transpose(tf.reshape(t, [out, t.size / out]), [1, 0]);
    }
    case "conv":
      return tf.transpose(t, [2, 3, 1, 0]);
  }
}

/** The internal shape of a PyTorch-shaped parameter. */
export function internalShape(shape: readonly number[], layout: ParamLayout): number[] {
  switch (layout) {
    case "plain":
      return [...shape];
    case "linear":
      return [shape.slice(1).reduce((a, b) => a * b, 1), shape[0]];
    case "conv":
      return [shape[2], shape[3], shape[1], shape[0]];
  }
}

/** `toInternalLayout` on host data (PyTorch-layout elements in, internal-layout elements out). */
export function hostInternalLayout(
  data: Float32Array,
  shape: readonly number[],
  layout: ParamLayout,
): Float32Array {
  if (layout === "plain") return data;
  const out = new Float32Array(data.length);
  if (layout === "linear") {
    const rows = shape[0]; // out
    const cols = data.length / rows; // in
    for (let r = 0; r < rows; r++) {
      const base = r * cols;
      for (let c = 0; c < cols; c++) out[c * rows + r] = data[base + c];
    }
    return out;
  }
  const [o, i, kh, kw] = shape;
  // [o, i, kh, kw] -> [kh, kw, i, o]
  for (let a = 0; a < o; a++) {
    for (let b = 0; b < i; b++) {
      for (let y = 0; y < kh; y++) {
        for (let x = 0; x < kw; x++) {
          out[((y * kw + x) * i + b) * o + a] = data[((a * i + b) * kh + y) * kw + x];
        }
      }
    }
  }
  return out;
}

/** Internal layout -> PyTorch layout. */
export function fromInternalLayout(
  t: tf.Tensor,
  layout: ParamLayout,
  torchShape: readonly number[],
): tf.Tensor {
  switch (layout) {
    case "plain":
      return t.clone();
    case "linear":
      return tf.reshape(tf.transpose(t, [1, 0]), [...torchShape]);
    case "conv":
      return tf.transpose(t, [3, 2, 0, 1]);
  }
}

/** All parameters of one model, by key name, in declaration order. */
export class ParamStore {
  readonly #params = new Map<string, Param>();
  readonly #modules = new Map<string, object>();

  /** Records a layer object under its key path (LoRA finds its target Linear layers here). */
  registerModule(path: string, module: object): void {
    if (this.#modules.has(path)) throw new Error(`module "${path}" registered twice`);
    this.#modules.set(path, module);
  }

  /** Registered layers by key path, in declaration order. */
  modules(): Map<string, object> {
    return new Map(this.#modules);
  }

  /** Declares a parameter; a second declaration of the same key is a programming error. */
  declare(name: string, shape: readonly number[], layout: ParamLayout): Param {
    if (this.#params.has(name)) throw new Error(`parameter "${name}" declared twice`);
    for (const d of shape) {
      if (!Number.isSafeInteger(d) || d <= 0) {
        throw new Error(`parameter "${name}": invalid shape ${JSON.stringify(shape)}`);
      }
    }
    const p = new Param(name, shape, layout);
    this.#params.set(name, p);
    return p;
  }

  get(name: string): Param | undefined {
    return this.#params.get(name);
  }

  names(): string[] {
    return [...this.#params.keys()];
  }

  params(): Param[] {
    return [...this.#params.values()];
  }

  /** Total number of scalar parameters. */
  count(): number {
    let n = 0;
    for (const p of this.#params.values()) n += p.size;
    return n;
  }

  /** Marks every base parameter trainable (full fine-tuning) or frozen (the default). */
  setTrainable(trainable: boolean): void {
    for (const p of this.#params.values()) p.value.trainable = trainable;
  }

  /** The variables, by key name (internal layout). */
  variables(): Map<string, tf.Variable> {
    return new Map([...this.#params].map(([k, p]) => [k, p.value]));
  }

  dispose(): void {
    for (const p of this.#params.values()) p.dispose();
  }

  /** A view that prefixes names with `prefix.`. */
  scope(prefix: string): ParamScope {
    return new ParamScope(this, prefix);
  }
}

/** Declares parameters under a dotted prefix, e.g. `down_blocks.0.resnets.1`. */
export class ParamScope {
  constructor(readonly store: ParamStore, readonly prefix: string) {}

  key(name: string): string {
    return this.prefix ? `${this.prefix}.${name}` : name;
  }

  declare(name: string, shape: readonly number[], layout: ParamLayout): Param {
    return this.store.declare(this.key(name), shape, layout);
  }

  scope(name: string | number): ParamScope {
    return new ParamScope(this.store, this.key(String(name)));
  }
}
