import { assert, assertEquals } from "../../lib/testing/assert.ts";
import { configHash, parseConfig } from "./config.ts";
import {
  D3PO_EPOCH,
  endsEpoch,
  type EpochSettings,
  epochSettings,
  epochStart,
  isPerBatch,
  meanOfUpdates,
  runEpochUpdates,
  updatePlan,
} from "./epoch.ts";

const base = { scorers: [{ name: "jpeg_compressibility" }] };
const settings = (o: Partial<EpochSettings>): EpochSettings => ({
  sampleBatchesPerEpoch: 1,
  trainBatchSize: null,
  gradientAccumulationSteps: 1,
  numInnerEpochs: 1,
  ...o,
});

Deno.test("defaults are the per-batch loop: one step over every pair, in sampling order", () => {
  const s = epochSettings(parseConfig(JSON.stringify(base)));
  assert(isPerBatch(s));
  assertEquals(updatePlan(5, s, 3, 0), [[0, 1, 2, 3, 4]]);
  assertEquals(updatePlan(0, s, 3, 0), []);
  assert([1, 2, 3].every((n) => endsEpoch(n, s, 10)));
});

Deno.test("the config hash of the per-batch defaults is the one runs had before the epoch keys", () => {
  const plain = parseConfig(JSON.stringify(base));
  const explicit = parseConfig(JSON.stringify({
    ...base,
    training: { sample_batches_per_epoch: 1, num_inner_epochs: 1, gradient_accumulation_steps: 1 },
  }));
  assertEquals(configHash(explicit), configHash(plain));
  const epochs = parseConfig(JSON.stringify({ ...base, training: { sample_batches_per_epoch: 2 } }));
  assert(configHash(epochs) !== configHash(plain), "an epoch structure is part of the identity");
});

Deno.test("structure d3po fills D3PO's values; the user's keys win", () => {
  const c = parseConfig(JSON.stringify({
    ...base,
    method: "d3po",
    preference: { finetune_step_indices: [0, 4, 8] },
    training: { structure: "d3po" },
  }));
  assertEquals(c.training.sample_batches_per_epoch, D3PO_EPOCH.sample_batches_per_epoch);
  assertEquals(c.training.train_batch_size, 3, "one trajectory pair = its 3 fine-tuned steps");
  assertEquals(c.training.num_inner_epochs, 1);
  const mine = parseConfig(JSON.stringify({
    ...base,
    training: { structure: "d3po", sample_batches_per_epoch: 4, train_batch_size: 2 },
  }));
  assertEquals([mine.training.sample_batches_per_epoch, mine.training.train_batch_size], [4, 2]);
  // Resolving twice changes nothing (config.json of a run parses back to the same config).
  assertEquals(parseConfig(JSON.stringify(mine)), mine);
});

Deno.test("minibatches: every pair once per inner epoch, seeded, sized train_batch_size x accumulation", () => {
  const s = settings({ trainBatchSize: 2, gradientAccumulationSteps: 2, numInnerEpochs: 3 });
  const plan = updatePlan(10, s, 7, 1);
  assertEquals(plan.map((m) => m.length), [4, 4, 2, 4, 4, 2, 4, 4, 2]);
  for (let inner = 0; inner < 3; inner++) {
    const seen = plan.slice(inner * 3, inner * 3 + 3).flat().sort((a, b) => a - b);
    assertEquals(seen, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  }
  assertEquals(updatePlan(10, s, 7, 1), plan, "same seed and epoch, same order");
  assert(JSON.stringify(updatePlan(10, s, 7, 2)) !== JSON.stringify(plan), "another epoch reshuffles");
  assert(JSON.stringify(plan.slice(0, 3)) !== JSON.stringify(plan.slice(3, 6)), "inner epochs reshuffle");
});

Deno.test("epoch boundaries: the last epoch may be short", () => {
  const s = settings({ sampleBatchesPerEpoch: 3 });
  assertEquals([1, 2, 3, 4, 5, 6, 7].map((n) => endsEpoch(n, s, 7)), [
    false,
    false,
    true,
    false,
    false,
    true,
    true,
  ]);
  assertEquals([0, 1, 2, 3, 5, 6].map((k) => epochStart(k, s)), [0, 0, 0, 3, 3, 6]);
});

Deno.test("runEpochUpdates chains the expected optimizer step and keeps the plan's order", async () => {
  const s = settings({ trainBatchSize: 1, numInnerEpochs: 2 });
  const seen: [string[], number][] = [];
  const out = await runEpochUpdates(["a", "b", "c"], s, 1, 0, 5, (pairs, _k, expected) => {
    seen.push([pairs, expected]);
    return Promise.resolve({
      loss: expected,
      meanLogRatioWinner: 1,
      meanLogRatioLoser: -1,
      accuracy: 1,
      optimizerStep: BigInt(expected + 1),
      adapterChecksum: `c${expected + 1}`,
    });
  });
  assertEquals(seen.map(([, e]) => e), [5, 6, 7, 8, 9, 10]);
  assertEquals(seen.slice(0, 3).map(([p]) => p[0]).sort(), ["a", "b", "c"]);
  assertEquals(out.at(-1)!.adapterChecksum, "c11");
  const m = meanOfUpdates(out.map((r) => ({ loss: r.loss, h_w: 1, h_l: -1, accuracy: 1, pairs: 1 })))!;
  assertEquals(m.loss, (5 + 6 + 7 + 8 + 9 + 10) / 6);
  assertEquals(meanOfUpdates([]), null);
});
