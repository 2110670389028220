/**
 * Helpers that turn per-batch-item scalars into tensors broadcasting over [B, ...] tensors, and shape
 * checks with messages that name the field. Shared by the sampler step and the log-probabilities.
 */
import * as tf from "@tensorflow/tfjs-core";
import { InvalidArgumentError } from "../errors.ts";

/** One value for the whole batch, or one per batch item. */
export type PerItem<T> = T | readonly T[];

/** Throws unless `t` has rank >= 2 ([B, ...]). */
export function requireBatched(t: tf.Tensor, field: string): void {
  if (t.rank < 2) {
    throw new InvalidArgumentError(
      field,
      `expected a batched tensor [B, ...], got shape [${t.shape.join(", ")}]`,
    );
  }
}

/** Throws unless `t` has exactly the shape of `ref`. */
export function requireSameShape(t: tf.Tensor, ref: tf.Tensor, field: string, refField: string): void {
  if (t.rank !== ref.rank || t.shape.some((d, i) => d !== ref.shape[i])) {
    throw new InvalidArgumentError(
      field,
      `shape [${t.shape.join(", ")}] differs from ${refField} [${ref.shape.join(", ")}]`,
    );
  }
}

/** Expands a per-item value list to one entry per batch item (checking its length). */
export function expandPerItem<T>(value: PerItem<T>, batch: number, field: string): T[] {
  if (!Array.isArray(value)) return new Array<T>(batch).fill(value as T);
  const list = value as readonly T[];
  if (list.length === 1) return new Array<T>(batch).fill(list[0]);
  if (list.length !== batch) {
    throw new InvalidArgumentError(field, `expected 1 or ${batch} (batch size) values, got ${list.length}`);
  }
  return [...list];
}

/**
 * Per-item numbers as a tensor that broadcasts over a [B, ...] tensor of the given rank: a scalar
 * when all items share the value (so a single-step batch runs the plain scalar arithmetic), else
 * [B, 1, ..., 1].
 */
export function broadcastPerItem(values: readonly number[], rank: number): tf.Tensor {
  if (values.every((v) => v === values[0])) return tf.scalar(values[0]);
  return tf.tensor(values, [values.length, ...new Array(rank - 1).fill(1)]);
}
