import assert from "node:assert/strict";
import { InvalidArgumentError } from "../errors.ts";
import { isSkippedTie, rankCandidates, selectIndependentPair, selectSharedParentPair } from "./pairing.ts";
import { randomIndex } from "./rng.ts";

const field = (f: string) => (e: unknown) => e instanceof InvalidArgumentError && e.field === f;

Deno.test("RDPO_SPEC 4: shared_parent pairs the best and the worst of K candidates", () => {
  assert.deepEqual(rankCandidates([0.3, 0.9, -0.2, 0.5]), { winner: 1, loser: 2, margin: 1.1 });
  assert.deepEqual(rankCandidates([2, 1]), { winner: 0, loser: 1, margin: 1 });
  // Equal maxima: the first wins; equal minima: the last loses; so winner != loser even for all-equal.
  assert.deepEqual(rankCandidates([1, 3, 3, 0, 0]), { winner: 1, loser: 4, margin: 3 });
  assert.deepEqual(rankCandidates([7, 7, 7]), { winner: 0, loser: 2, margin: 0 });
});

Deno.test("RDPO_SPEC 4: shared_parent needs K >= 2 finite step rewards", () => {
  assert.throws(() => rankCandidates([1]), field("step_rewards"));
  assert.throws(() => rankCandidates([1, NaN]), field("step_rewards[1]"));
  assert.throws(() => rankCandidates([1, Infinity]), field("step_rewards[1]"));
});

Deno.test("RDPO_SPEC 4: the trajectory continues from the winner, or from a seeded random candidate", () => {
  const r = [0.1, 0.4, 0.2];
  assert.equal(selectSharedParentPair(r).next, 1);
  const key = { seed: 3n, stream: 11n };
  const s = selectSharedParentPair(r, { continueFrom: "random", choiceKey: key });
  assert.equal(s.next, randomIndex(key, 3));
  assert.equal(s.winner, 1);
  assert.equal(s.loser, 0);
  // Reproducible, and different keys reach every candidate.
  assert.equal(selectSharedParentPair(r, { continueFrom: "random", choiceKey: key }).next, s.next);
  const seen = new Set<number>();
  for (let stream = 0n; stream < 64n; stream++) {
    seen.add(selectSharedParentPair(r, { continueFrom: "random", choiceKey: { seed: 3n, stream } }).next);
  }
  assert.deepEqual([...seen].sort(), [0, 1, 2]);
  assert.throws(() => selectSharedParentPair(r, { continueFrom: "random" }), field("choice_key"));
});

Deno.test("RDPO_SPEC 4: a pair whose gap is below min_margin is skipped; with the default 0 exact ties are skipped", () => {
  // Default min_margin 0: an exact tie carries no preference and is skipped; any positive gap trains.
  assert.equal(isSkippedTie(0), true);
  assert.equal(isSkippedTie(1e-12), false);
  assert.equal(selectSharedParentPair([0.5, 0.5]).skipped, true);
  assert.equal(selectSharedParentPair([0.5, 0.6]).skipped, false);
  // min_margin > 0: gaps strictly below it are skipped, a gap equal to it is trained.
  assert.equal(isSkippedTie(0.09, 0.1), true);
  assert.equal(isSkippedTie(0.1, 0.1), false);
  assert.equal(selectSharedParentPair([0, 0.05, 0.02], { minMargin: 0.1 }).skipped, true);
  assert.equal(selectIndependentPair([1, 1.05], { minMargin: 0.1 }).skipped, true);
  assert.throws(() => isSkippedTie(1, -0.1), field("min_margin"));
  assert.throws(() => isSkippedTie(1, NaN), field("min_margin"));
});

Deno.test("RDPO_SPEC 4: independent pairs: the trajectory with the higher step reward wins", () => {
  assert.deepEqual(selectIndependentPair([0.25, 0.75]), { winner: 1, loser: 0, margin: 0.5, skipped: false });
  assert.deepEqual(selectIndependentPair([0.9, 0.7]).winner, 0);
  assert.deepEqual(selectIndependentPair([0.4, 0.4]), { winner: 0, loser: 1, margin: 0, skipped: true });
  assert.throws(() => selectIndependentPair([1, 2, 3]), field("step_rewards"));
});
