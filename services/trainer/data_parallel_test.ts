import { assert, assertEquals, assertThrows } from "../../lib/testing/assert.ts";
import { divergentReplicas, type GradientUnit, reduceGradients, shardBatch } from "./data_parallel.ts";
import { gaussian } from "../../lib/rdpo/rng.ts";

Deno.test("shardBatch: contiguous blocks covering the batch once, P not dividing it", () => {
  for (const [batch, p] of [[7, 3], [2, 3], [6, 2], [1, 1], [0, 2], [10, 4]]) {
    for (let step = 0; step < 5; step++) {
      const shards = shardBatch(batch, p, step, 11);
      assertEquals(shards.map((s) => s.replica), [...Array(p).keys()]);
      const covered = shards.flatMap((s) => Array.from({ length: s.size }, (_, i) => s.offset + i));
      assertEquals(covered.sort((a, b) => a - b), [...Array(batch).keys()], `batch ${batch}, P ${p}`);
      const sizes = shards.map((s) => s.size);
      assert(Math.max(...sizes) - Math.min(...sizes) <= 1, `balanced sizes ${sizes}`);
    }
  }
});

Deno.test("shardBatch: a pure function of (step, seed, P); the larger blocks rotate", () => {
  assertEquals(shardBatch(7, 3, 4, 2), shardBatch(7, 3, 4, 2));
  // 7 over 3: blocks [0,3) [3,5) [5,7); replica r gets block (r + step + seed) mod 3.
  assertEquals(shardBatch(7, 3, 0, 0), [
    { replica: 0, offset: 0, size: 3 },
    { replica: 1, offset: 3, size: 2 },
    { replica: 2, offset: 5, size: 2 },
  ]);
  assertEquals(shardBatch(7, 3, 1, 0)[2], { replica: 2, offset: 0, size: 3 });
  assertEquals(shardBatch(7, 3, 0, 1), shardBatch(7, 3, 1, 0));
  assertEquals(shardBatch(7, 3, 0, 2n ** 63n + 1n).length, 3);
  assertThrows(() => shardBatch(4, 0, 0, 0));
  assertThrows(() => shardBatch(4, 2, -1, 0));
});

function unit(index: number, pairs: number, seed: number, size = 33): GradientUnit {
  return {
    index,
    pairs,
    gradients: new Map([
      ["b.lora_B.weight", gaussian({ seed: BigInt(seed), stream: 1n }, size)],
      ["a.lora_A.weight", gaussian({ seed: BigInt(seed), stream: 2n }, 5)],
    ]),
    loss: seed,
    meanLogRatioWinner: 1,
    meanLogRatioLoser: 0,
    accuracy: pairs ? 1 : 0,
  };
}

Deno.test("reduceGradients: weights by pair count (the batch mean), keys sorted", () => {
  const r = reduceGradients([unit(0, 1, 1), unit(1, 3, 2), unit(2, 0, 3)])!;
  assertEquals([...r.gradients.keys()], ["a.lora_A.weight", "b.lora_B.weight"]);
  assertEquals(r.pairs, 4);
  assertEquals(r.loss, (1 * 1 + 3 * 2) / 4); // the unit without pairs counts for nothing
  const g1 = unit(0, 1, 1).gradients.get("b.lora_B.weight")!;
  const g2 = unit(1, 3, 2).gradients.get("b.lora_B.weight")!;
  const got = r.gradients.get("b.lora_B.weight")!;
  for (let i = 0; i < got.length; i++) {
    assertEquals(got[i], Math.fround((1 * g1[i] + 3 * g2[i]) / 4));
  }
});

Deno.test("reduceGradients: bit-identical whatever the arrival order or split into replicas", () => {
  const units = Array.from({ length: 7 }, (_, i) => unit(i, (i * 5) % 4, 10 + i, 257));
  const ref = reduceGradients(units)!;
  const bytes = (r: typeof ref) => [...r.gradients.values()].map((g) => [...new Uint8Array(g.buffer)]);
  for (const perm of [[6, 5, 4, 3, 2, 1, 0], [3, 0, 6, 1, 5, 2, 4]]) {
    const shuffled = perm.map((i) => units[i]);
    assertEquals(bytes(reduceGradients(shuffled)!), bytes(ref));
  }
  // The naive alternative (float32 sums in arrival order) is not: that is why the order is fixed.
  const naive = (order: GradientUnit[]) => {
    const out = new Float32Array(257);
    let n = 0;
    for (const u of order) {
      n += u.pairs;
      const g = u.gradients.get("b.lora_B.weight")!;
      for (let i = 0; i < out.length; i++) out[i] = Math.fround(out[i] + Math.fround(u.pairs * g[i]));
    }
    return out.map((v) => v / n);
  };
  const a = naive(units);
  const b = naive([...units].reverse());
  assert(a.some((v, i) => v !== b[i]), "float32 sums in another order differ somewhere");
});

Deno.test("reduceGradients: nothing to reduce, mismatched units refused", () => {
  assertEquals(reduceGradients([]), null);
  assertEquals(reduceGradients([unit(0, 0, 1)]), null);
  assertThrows(() => reduceGradients([unit(0, 1, 1), unit(0, 1, 2)]), Error, "twice");
  assertThrows(() => reduceGradients([unit(0, 1, 1, 3), unit(1, 1, 2, 4)]), Error, "values");
});

Deno.test("divergentReplicas: names the odd one out", () => {
  assertEquals(divergentReplicas(["a", "a", "a"]), []);
  assertEquals(divergentReplicas(["a", "b", "a"]), [1]);
  assertEquals(divergentReplicas(["b", "a", "a"]), [0]);
  assertEquals(divergentReplicas(["a", "b"]), [1]);
  assertEquals(divergentReplicas(["x"]), []);
});
