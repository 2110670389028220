import assert from "node:assert/strict";
import { InvalidArgumentError } from "../errors.ts";
import { summarizePairs } from "./pair_metrics.ts";

Deno.test("RDPO_SPEC 6: step metrics: loss, mean h_w, mean h_l, accuracy (h_w > h_l), reward margin, skipped ties", () => {
  const m = summarizePairs({
    logRatioWinner: [0.2, -0.1, 0.0, 0.3],
    logRatioLoser: [0.1, 0.1, 0.0, -0.3],
    losses: [0.6, 0.8, Math.LN2, 0.5],
    rewardMargins: [1, 2, 3, 6],
    skippedTies: 2,
  });
  assert.ok(Math.abs(m.loss - (0.6 + 0.8 + Math.LN2 + 0.5) / 4) < 1e-15);
  assert.ok(Math.abs(m.meanLogRatioWinner - 0.1) < 1e-15);
  assert.ok(Math.abs(m.meanLogRatioLoser - (-0.025)) < 1e-15);
  // Strict: the pair with h_w = h_l = 0 is not correct.
  assert.equal(m.accuracy, 0.5);
  assert.equal(m.rewardMargin, 3);
  assert.equal(m.skippedTies, 2);
  assert.deepEqual(m.pairs.map((p) => p.correct), [true, false, false, true]);
  assert.equal(m.pairs[3].logRatioLoser, -0.3);
});

Deno.test("step metrics with no trained pairs are zeros, and mismatched lengths name the field", () => {
  const m = summarizePairs({ logRatioWinner: [], logRatioLoser: [], losses: [], skippedTies: 4 });
  assert.deepEqual({ ...m, pairs: m.pairs.length }, {
    loss: 0,
    meanLogRatioWinner: 0,
    meanLogRatioLoser: 0,
    accuracy: 0,
    rewardMargin: 0,
    skippedTies: 4,
    pairs: 0,
  });
  const field = (f: string) => (e: unknown) => e instanceof InvalidArgumentError && e.field === f;
  assert.throws(
    () => summarizePairs({ logRatioWinner: [1], logRatioLoser: [], losses: [1] }),
    field("log_ratio_loser"),
  );
  assert.throws(
    () => summarizePairs({ logRatioWinner: [1], logRatioLoser: [0], losses: [1], rewardMargins: [] }),
    field("reward_margins"),
  );
  assert.throws(
    () => summarizePairs({ logRatioWinner: [], logRatioLoser: [], losses: [], skippedTies: -1 }),
    field("skipped_ties"),
  );
});
