/**
 * Test assertions (JSR's @std/assert cannot be reached here): thin wrappers over node:assert plus
 * numeric helpers for parity tests.
 */
import nodeAssert from "node:assert/strict";

export class AssertionError extends Error {
  override name = "AssertionError";
}

export function assert(condition: unknown, message = "assertion failed"): asserts condition {
  if (!condition) throw new AssertionError(message);
}

export function assertEquals<T>(actual: T, expected: T, message?: string): void {
  if (message === undefined) nodeAssert.deepStrictEqual(actual, expected);
  else nodeAssert.deepStrictEqual(actual, expected, message);
}

export function assertNotEquals<T>(actual: T, expected: T, message?: string): void {
  if (message === undefined) nodeAssert.notDeepStrictEqual(actual, expected);
  else nodeAssert.notDeepStrictEqual(actual, expected, message);
}

export function assertStrictEquals<T>(actual: T, expected: T, message?: string): void {
  if (message === undefined) nodeAssert.strictEqual(actual, expected);
  else nodeAssert.strictEqual(actual, expected, message);
}

/** |actual - expected| <= tolerance (absolute). */
export function assertAlmostEquals(
  actual: number,
  expected: number,
  tolerance = 1e-7,
  message?: string,
): void {
  const diff = Math.abs(actual - expected);
  if (!(diff <= tolerance)) {
    throw new AssertionError(
      message ?? `expected ${actual} to be within ${tolerance} of ${expected} (difference ${diff})`,
    );
  }
}

/** Largest absolute elementwise difference; throws if the lengths differ. */
export function maxAbsDiff(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  if (actual.length !== expected.length) {
    throw new AssertionError(`length mismatch: ${actual.length} vs ${expected.length}`);
  }
  let m = 0;
  for (let i = 0; i < actual.length; i++) {
    const d = Math.abs(actual[i] - expected[i]);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}

/** Largest absolute value. */
export function maxAbs(values: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < values.length; i++) m = Math.max(m, Math.abs(values[i]));
  return m;
}

/** Elementwise closeness: max |a - e| <= atol + rtol * max|e|. Reports the worst element. */
export function assertAllClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  { atol = 0, rtol = 0, label = "values" }: { atol?: number; rtol?: number; label?: string } = {},
): void {
  const diff = maxAbsDiff(actual, expected);
  const bound = atol + rtol * maxAbs(expected);
  if (!(diff <= bound)) {
    throw new AssertionError(
      `${label}: max abs difference ${diff} exceeds ${bound} (atol ${atol}, rtol ${rtol})`,
    );
  }
}

export function assertThrows(
  fn: () => unknown,
  // deno-lint-ignore no-explicit-any
  errorClass?: new (...args: any[]) => Error,
  includes?: string,
): Error {
  try {
    fn();
  } catch (e) {
    checkError(e, errorClass, includes);
    return e as Error;
  }
  throw new AssertionError("expected function to throw");
}

export async function assertRejects(
  fn: () => Promise<unknown>,
  // deno-lint-ignore no-explicit-any
  errorClass?: new (...args: any[]) => Error,
  includes?: string,
): Promise<Error> {
  try {
    await fn();
  } catch (e) {
    checkError(e, errorClass, includes);
    return e as Error;
  }
  throw new AssertionError("expected promise to reject");
}

// deno-lint-ignore no-explicit-any
function checkError(e: unknown, errorClass?: new (...args: any[]) => Error, includes?: string): void {
  if (errorClass && !(e instanceof errorClass)) {
    throw new AssertionError(`expected ${errorClass.name}, got ${(e as Error)?.constructor?.name}: ${e}`);
  }
  if (includes && !String((e as Error)?.message ?? e).includes(includes)) {
    throw new AssertionError(
      `expected error message to include "${includes}", got "${(e as Error)?.message}"`,
    );
  }
}
