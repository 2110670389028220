import { assert, assertEquals, assertNotEquals, assertThrows } from "../../lib/testing/assert.ts";
import { randomInt, seededRandom, shuffled } from "./random.ts";

function take(random: () => number, n: number): number[] {
  return Array.from({ length: n }, () => random());
}

Deno.test("seededRandom: same seed and stream give the same sequence", () => {
  assertEquals(take(seededRandom(7, 3), 20), take(seededRandom(7, 3), 20));
});

Deno.test("seededRandom: different seeds, streams and high bits give different sequences", () => {
  const base = take(seededRandom(7, 3), 8);
  assertNotEquals(take(seededRandom(8, 3), 8), base);
  assertNotEquals(take(seededRandom(7, 4), 8), base);
  assertNotEquals(take(seededRandom(7 + 2 ** 32, 3), 8), base);
  assertNotEquals(take(seededRandom(7, 3 + 2 ** 32), 8), base);
});

Deno.test("seededRandom: values lie in [0, 1) and look uniform", () => {
  const xs = take(seededRandom(123), 20000);
  assert(xs.every((x) => x >= 0 && x < 1), "out of range");
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  assert(Math.abs(mean - 0.5) < 0.01, `mean ${mean}`);
  const buckets = new Array(10).fill(0);
  for (const x of xs) buckets[Math.floor(x * 10)]++;
  assert(buckets.every((c) => c > 1800 && c < 2200), `buckets ${buckets}`);
});

Deno.test("seededRandom: rejects negative or fractional seeds, naming the argument", () => {
  assertThrows(() => seededRandom(-1), RangeError, "seed");
  assertThrows(() => seededRandom(1, 0.5), RangeError, "stream");
});

Deno.test("shuffled: a permutation of the input, deterministic, input untouched", () => {
  const items = Array.from({ length: 50 }, (_, i) => i);
  const a = shuffled(items, seededRandom(1));
  const b = shuffled(items, seededRandom(1));
  assertEquals(a, b);
  assertEquals([...a].sort((x, y) => x - y), items);
  assertNotEquals(a, items);
  assertEquals(items[0], 0);
});

Deno.test("randomInt: covers [0, n) only", () => {
  const r = seededRandom(5);
  const seen = new Set<number>();
  for (let i = 0; i < 500; i++) seen.add(randomInt(r, 7));
  assertEquals([...seen].sort(), [0, 1, 2, 3, 4, 5, 6]);
});
