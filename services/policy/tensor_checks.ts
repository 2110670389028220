import { InvalidArgumentError } from "../../lib/errors.ts";
import type { HostTensor } from "./denoiser.ts";

function product(xs: readonly number[]): number {
  return xs.reduce((a, b) => a * b, 1);
}

/** Checks a float tensor's shape and finiteness (NaN latents are a client error, not a NaN loss). */
export function checkFloatTensor(t: HostTensor, field: string, expectRank: number): void {
  if (!t || !(t.data instanceof Float32Array)) throw new InvalidArgumentError(field, "is required (float32)");
  if (t.shape.length !== expectRank) {
    throw new InvalidArgumentError(
      `${field}.shape`,
      `expected ${expectRank} dims, got ${JSON.stringify(t.shape)}`,
    );
  }
  if (t.shape.some((d) => !Number.isSafeInteger(d) || d <= 0)) {
    throw new InvalidArgumentError(
      `${field}.shape`,
      `every dim must be a positive integer, got ${JSON.stringify(t.shape)}`,
    );
  }
  if (product(t.shape) !== t.data.length) {
    throw new InvalidArgumentError(
      field,
      `shape ${JSON.stringify(t.shape)} needs ${product(t.shape)} values, got ${t.data.length}`,
    );
  }
  for (let i = 0; i < t.data.length; i++) {
    if (!Number.isFinite(t.data[i])) {
      throw new InvalidArgumentError(field, `value ${i} is ${t.data[i]}; NaN and Inf are not allowed`);
    }
  }
}
