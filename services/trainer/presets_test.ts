import { assert, assertEquals, assertThrows } from "../../lib/testing/assert.ts";
import { parseConfig, type RunConfig } from "./config.ts";
import { D3PO_RATIO_CLAMP, METHOD_NAMES, PRESETS } from "./presets.ts";
import { ConfigError } from "./schema.ts";

const SCORERS = "scorers: [{name: aesthetic}]\n";

function withMethod(method: string, extra = ""): RunConfig {
  return parseConfig(`method: ${method}\n${SCORERS}${extra}`);
}

function methodSummary(c: RunConfig) {
  return {
    mode: c.mode,
    estimator: c.preference.estimator,
    pairing: c.preference.pairing,
    continue_from: c.preference.continue_from,
    num_candidates: c.preference.num_candidates,
    loss: c.loss.kind,
    lambda: c.loss.lambda,
    ratio_clamp: c.loss.ratio_clamp,
  };
}

Deno.test("preset rdpo: delta_q, shared_parent, rdpo loss, lambda 100", () => {
  assertEquals(methodSummary(withMethod("rdpo")), {
    mode: "train",
    estimator: "delta_q",
    pairing: "shared_parent",
    continue_from: "winner",
    num_candidates: 2,
    loss: "rdpo",
    lambda: 100,
    ratio_clamp: 0,
  });
});

Deno.test("preset rdpo_star: rdpo with lambda = 0", () => {
  const c = withMethod("rdpo_star");
  assertEquals(methodSummary(c), { ...methodSummary(withMethod("rdpo")), lambda: 0 });
});

Deno.test("preset tailorpo: q estimator, shared_parent, dpo loss", () => {
  assertEquals(methodSummary(withMethod("tailorpo")), {
    mode: "train",
    estimator: "q",
    pairing: "shared_parent",
    continue_from: "winner",
    num_candidates: 2,
    loss: "dpo",
    lambda: 100, // the schema default; unused by dpo
    ratio_clamp: 0,
  });
});

Deno.test("preset d3po: final reward, independent pairs, dpo with D3PO's clamp 0.1", () => {
  assertEquals(D3PO_RATIO_CLAMP, 0.1);
  assertEquals(methodSummary(withMethod("d3po")), {
    mode: "train",
    estimator: "final",
    pairing: "independent",
    continue_from: "winner",
    num_candidates: 2,
    loss: "dpo",
    lambda: 100,
    ratio_clamp: 0.1,
  });
});

Deno.test("preset dpo_stepwise: q, shared_parent, random continuation, dpo without clamp", () => {
  assertEquals(methodSummary(withMethod("dpo_stepwise")), {
    mode: "train",
    estimator: "q",
    pairing: "shared_parent",
    continue_from: "random",
    num_candidates: 2,
    loss: "dpo",
    lambda: 100,
    ratio_clamp: 0,
  });
});

Deno.test("presets best_of_n_q / best_of_n_delta_q: inference-only best-of-N (spec section 7)", () => {
  const q = withMethod("best_of_n_q");
  assertEquals(q.mode, "best_of_n");
  assertEquals(q.best_of_n, { num_candidates: 4, estimator: "q", samples_per_prompt: 5 });
  const dq = withMethod("best_of_n_delta_q", "best_of_n: {num_candidates: 8}");
  assertEquals(dq.best_of_n, { num_candidates: 8, estimator: "delta_q", samples_per_prompt: 5 });
  assert(
    assertThrows(() => withMethod("best_of_n_q", "best_of_n: {estimator: final}"), ConfigError)
      .message.includes(`best_of_n.estimator: "final" is not one of q, delta_q`),
  );
  const [m] =
    (assertThrows(() => withMethod("best_of_n_q", "sampling: {eta: 0}"), ConfigError) as ConfigError)
      .issues;
  assertEquals(m.path, "sampling.eta");
});

Deno.test("presets: user keys override preset values", () => {
  assertEquals(withMethod("rdpo", "loss: {lambda: 10}").loss.lambda, 10);
  assertEquals(withMethod("d3po", "loss: {ratio_clamp: 0.2}").loss.ratio_clamp, 0.2);
  assertEquals(
    withMethod("tailorpo", "preference: {continue_from: random}").preference.continue_from,
    "random",
  );
  assertEquals(withMethod("rdpo_star", "loss: {beta: 1}").loss, {
    kind: "rdpo",
    beta: 1,
    lambda: 0,
    ratio_clamp: 0,
  });
  // Overriding the pairing of d3po also needs an estimator that works with it.
  const c = withMethod("d3po", "preference: {pairing: shared_parent, estimator: q, num_candidates: 4}");
  assertEquals([c.preference.pairing, c.preference.num_candidates, c.loss.ratio_clamp], [
    "shared_parent",
    4,
    0.1,
  ]);
});

Deno.test("presets: a preset value made meaningless by a user key is reported as the preset's", () => {
  const e = assertThrows(() => withMethod("d3po", "loss: {kind: rdpo}"), ConfigError) as ConfigError;
  assertEquals(e.issues.length, 1);
  assertEquals(e.issues[0].path, "loss.ratio_clamp");
  assert(e.message.includes("(set by the d3po preset)"), e.message);
  const e2 = assertThrows(() => withMethod("tailorpo", "loss: {lambda: 5}"), ConfigError);
  assert(e2.message.includes("loss.lambda: 5 (set in the config) has no effect"), e2.message);
});

Deno.test("presets: every method name has a preset with a description, and an unknown name is suggested", () => {
  assertEquals(Object.keys(PRESETS).sort(), [...METHOD_NAMES].sort());
  for (const name of METHOD_NAMES) assert(PRESETS[name].description.length > 10, name);
  const e = assertThrows(() => withMethod("tailor_po"), ConfigError);
  assertEquals(
    e.message,
    `method: "tailor_po" is not one of ${METHOD_NAMES.join(", ")} (did you mean "tailorpo"?)`,
  );
});
