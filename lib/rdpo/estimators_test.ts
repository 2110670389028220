import assert from "node:assert/strict";
import { InvalidArgumentError } from "../errors.ts";
import { candidateStepRewards, requiredRewards, stepReward, stepRewards } from "./estimators.ts";
import { rankCandidates, selectIndependentPair } from "./pairing.ts";

const field = (f: string) => (e: unknown) => e instanceof InvalidArgumentError && e.field === f;

Deno.test("RDPO_SPEC 3: final gives every step the final image's reward", () => {
  assert.equal(stepReward("final", { final: 6.5, next: 1, current: 2 }), 6.5);
  assert.deepEqual(candidateStepRewards("final", { final: [1, 2, 3] }), [1, 2, 3]);
});

Deno.test("RDPO_SPEC 3: q scores the candidate by Q(x_prev)", () => {
  assert.equal(stepReward("q", { next: 0.8, current: 5 }), 0.8);
});

Deno.test("RDPO_SPEC 3: delta_q scores the improvement Q(x_prev) - Q(x_t) (next minus current)", () => {
  assert.equal(stepReward("delta_q", { next: 5.5, current: 5 }), 0.5);
  // A candidate that lowers the reward gets a negative step reward (the paper's printed sign would reward it).
  assert.equal(stepReward("delta_q", { next: 4, current: 5 }), -1);
  assert.deepEqual(candidateStepRewards("delta_q", { next: [6, 4.5], current: 5 }), [1, -0.5]);
});

Deno.test("RDPO_SPEC 3: under shared_parent, q and delta_q give the same ranking and the same pair gap; the step rewards differ", () => {
  const next = [5.2, 6.1, 4.9, 5.7];
  const current = 5.5;
  const q = candidateStepRewards("q", { next, current });
  const dq = candidateStepRewards("delta_q", { next, current });
  const rq = rankCandidates(q);
  const rdq = rankCandidates(dq);
  assert.deepEqual([rq.winner, rq.loser], [1, 2]);
  assert.deepEqual([rdq.winner, rdq.loser], [1, 2]);
  // The full order is the same too: delta_q is q shifted by the common Q(x_t).
  const order = (xs: number[]) => xs.map((_, i) => i).sort((a, b) => xs[b] - xs[a]);
  assert.deepEqual(order(q), order(dq));
  // The spec says the two "differ in the reward margin". The gap winner - loser does not: Q(x_t)
  // cancels, (Q_w - Q_t) - (Q_l - Q_t) = Q_w - Q_l, up to float rounding. What differs are the step
  // rewards themselves (shifted by -Q(x_t)), e.g. their sign: delta_q tells improvement from decline.
  assert.ok(Math.abs(rq.margin - rdq.margin) < 1e-12, `${rq.margin} vs ${rdq.margin}`);
  assert.ok(Math.abs(rq.margin - 1.2) < 1e-12);
  for (let k = 0; k < next.length; k++) assert.ok(Math.abs(q[k] - dq[k] - current) < 1e-12);
  assert.deepEqual(dq.map((v) => v > 0), [false, true, false, true]);
  assert.deepEqual(q.map((v) => v > 0), [true, true, true, true]);
});

Deno.test("RDPO_SPEC 3: under independent pairs, q and delta_q can rank differently (parents differ)", () => {
  // Trajectory a: Q(x_t^a) = 5, Q(x_prev^a) = 6 (improves by 1). b: 7 -> 6.5 (worsens by 0.5).
  const a = { current: 5, next: 6 };
  const b = { current: 7, next: 6.5 };
  const byQ = selectIndependentPair(stepRewards("q", [a, b]));
  const byDq = selectIndependentPair(stepRewards("delta_q", [a, b]));
  assert.equal(byQ.winner, 1);
  assert.equal(byDq.winner, 0);
  assert.equal(byQ.margin, 0.5);
  assert.equal(byDq.margin, 1.5);
});

Deno.test("estimators ask only for the rewards they read and reject missing or non-finite ones", () => {
  assert.deepEqual(requiredRewards("final"), { next: false, current: false, final: true });
  assert.deepEqual(requiredRewards("q"), { next: true, current: false, final: false });
  assert.deepEqual(requiredRewards("delta_q"), { next: true, current: true, final: false });
  assert.throws(() => stepReward("delta_q", { next: 1 }), field("rewards.current"));
  assert.throws(() => stepReward("q", { next: NaN }), field("rewards.next"));
  assert.throws(() => stepReward("final", {}), field("rewards.final"));
  assert.throws(() => stepReward("mean" as "q", { next: 1 }), field("estimator"));
  assert.throws(() => candidateStepRewards("q", { current: 1 }), field("rewards.next"));
  assert.throws(() => candidateStepRewards("delta_q", { next: [1, 2] }), field("rewards[0].current"));
});
