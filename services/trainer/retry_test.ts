import { assert, assertEquals, assertRejects, assertStrictEquals } from "../../lib/testing/assert.ts";
import { InvalidArgumentError, UnavailableError } from "../../lib/errors.ts";
import { seededRandom } from "./random.ts";
import {
  backoffDelayMs,
  isRetryableError,
  type RetryPolicy,
  retryPolicyFromConfig,
  sleep,
  withRetry,
} from "./retry.ts";

const POLICY: RetryPolicy = {
  maxAttempts: 5,
  initialBackoffMs: 100,
  maxBackoffMs: 1000,
  multiplier: 2,
  jitter: 0,
  maxTotalMs: 60_000,
};

class GrpcLikeError extends Error {
  constructor(readonly code: number, message = `status ${code}`) {
    super(message);
  }
}

/** A fake clock and sleep: sleeping advances the clock, nothing waits for real. */
function fakeTime() {
  let t = 1_000_000;
  const sleeps: number[] = [];
  return {
    now: () => t,
    sleep: (ms: number) => {
      sleeps.push(ms);
      t += ms;
      return Promise.resolve();
    },
    sleeps,
    advance: (ms: number) => (t += ms),
  };
}

/** Fails with the given errors in order, then returns "ok". */
function flaky(errors: unknown[]) {
  const calls: number[] = [];
  const fn = (attempt: number) => {
    calls.push(attempt);
    const e = errors[calls.length - 1];
    return e === undefined ? Promise.resolve("ok") : Promise.reject(e);
  };
  return { fn, calls };
}

Deno.test("retry: UNAVAILABLE and DEADLINE_EXCEEDED are retried, by number or by name", () => {
  assert(isRetryableError(new GrpcLikeError(14)));
  assert(isRetryableError(new GrpcLikeError(4)));
  assert(isRetryableError(new UnavailableError("draining")));
  assert(isRetryableError({ code: "DEADLINE_EXCEEDED" }));
  assert(!isRetryableError(new GrpcLikeError(3)));
  assert(!isRetryableError(new GrpcLikeError(9)));
  assert(!isRetryableError(new InvalidArgumentError("x", "bad")));
  assert(!isRetryableError(new Error("plain")));
  assert(!isRetryableError(null));
});

Deno.test("retry: exponential delays capped at the maximum, no jitter", () => {
  assertEquals([1, 2, 3, 4, 5, 6].map((k) => backoffDelayMs(POLICY, k)), [100, 200, 400, 800, 1000, 1000]);
});

Deno.test("retry: jitter only shortens delays, and a seeded source makes them reproducible", () => {
  const p = { ...POLICY, jitter: 0.5 };
  const a = [1, 2, 3, 4].map((k) => backoffDelayMs(p, k, seededRandom(9, k)));
  const b = [1, 2, 3, 4].map((k) => backoffDelayMs(p, k, seededRandom(9, k)));
  assertEquals(a, b);
  [100, 200, 400, 800].forEach((full, i) => assert(a[i] <= full && a[i] >= full / 2, `${a[i]} vs ${full}`));
});

Deno.test("retry: a flaky call succeeds after transient failures, waiting the backoff", async () => {
  const time = fakeTime();
  const { fn, calls } = flaky([new GrpcLikeError(14), new GrpcLikeError(4), new GrpcLikeError(14)]);
  const events: number[] = [];
  const out = await withRetry(fn, POLICY, { ...time, onRetry: (e) => events.push(e.attempt) });
  assertEquals(out, "ok");
  assertEquals(calls, [1, 2, 3, 4]);
  assertEquals(time.sleeps, [100, 200, 400]);
  assertEquals(events, [1, 2, 3]);
});

Deno.test("retry: a non-retryable error is rethrown at once, unchanged", async () => {
  const time = fakeTime();
  const bad = new GrpcLikeError(3, "invalid argument");
  const { fn, calls } = flaky([new GrpcLikeError(14), bad]);
  const e = await assertRejects(() => withRetry(fn, POLICY, time), GrpcLikeError, "invalid argument");
  assertStrictEquals(e, bad);
  assertEquals(calls, [1, 2]);
  assertEquals(time.sleeps, [100]);
});

Deno.test("retry: gives up after maxAttempts with the last error and the attempt count", async () => {
  const time = fakeTime();
  const errors = [1, 2, 3, 4].map((i) => new GrpcLikeError(14, `down ${i}`));
  const { fn, calls } = flaky(errors);
  const e = await assertRejects(
    () => withRetry(fn, { ...POLICY, maxAttempts: 3 }, time),
    GrpcLikeError,
    "down 3",
  );
  assertEquals((e as unknown as { retryAttempts: number }).retryAttempts, 3);
  assertEquals((e as GrpcLikeError).code, 14);
  assertEquals(calls, [1, 2, 3]);
  assertEquals(time.sleeps, [100, 200]);
});

Deno.test("retry: gives up when the next attempt would start after maxTotalMs", async () => {
  const time = fakeTime();
  const slowFail = (attempt: number) => {
    time.advance(250); // each attempt takes 250 ms of (fake) time
    return Promise.reject(new GrpcLikeError(4, `timeout ${attempt}`));
  };
  // t=250 fail, wait 100 -> 350; t=600 fail, wait 200 -> 800; t=1050 fail, next wait 400 -> 1450 > 1000.
  await assertRejects(
    () => withRetry(slowFail, { ...POLICY, maxTotalMs: 1000 }, time),
    GrpcLikeError,
    "timeout 3",
  );
  assertEquals(time.sleeps, [100, 200]);
});

Deno.test("retry: maxAttempts 1 means a single try", async () => {
  const { fn, calls } = flaky([new GrpcLikeError(14)]);
  await assertRejects(() => withRetry(fn, { ...POLICY, maxAttempts: 1 }, fakeTime()), GrpcLikeError);
  assertEquals(calls, [1]);
});

Deno.test("retry: an abort signal stops waiting and rethrows", async () => {
  const controller = new AbortController();
  const { fn, calls } = flaky([new GrpcLikeError(14, "first"), new GrpcLikeError(14, "second")]);
  const p = withRetry(fn, { ...POLICY, initialBackoffMs: 60_000, maxBackoffMs: 60_000 }, {
    signal: controller.signal,
    onRetry: () => queueMicrotask(() => controller.abort()),
  });
  await assertRejects(() => p, GrpcLikeError, "first");
  assertEquals(calls, [1]);
});

Deno.test("retry: bad policies are rejected naming the field; config mapping", async () => {
  await assertRejects(
    () => withRetry(() => Promise.resolve(1), { ...POLICY, maxAttempts: 0 }),
    RangeError,
    "retry.maxAttempts",
  );
  await assertRejects(
    () => withRetry(() => Promise.resolve(1), { ...POLICY, jitter: 2 }),
    RangeError,
    "retry.jitter",
  );
  assertEquals(
    retryPolicyFromConfig({
      max_attempts: 3,
      initial_backoff_ms: 10,
      max_backoff_ms: 20,
      multiplier: 3,
      jitter: 0.1,
      max_total_ms: 99,
    }),
    { maxAttempts: 3, initialBackoffMs: 10, maxBackoffMs: 20, multiplier: 3, jitter: 0.1, maxTotalMs: 99 },
  );
});

Deno.test("retry: the default sleep resolves, early when aborted", async () => {
  await sleep(1);
  const c = new AbortController();
  c.abort();
  await sleep(60_000, c.signal);
});
