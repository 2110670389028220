import { assert, assertEquals, assertNotEquals, assertThrows } from "../../lib/testing/assert.ts";
import { InvalidArgumentError } from "../../lib/errors.ts";
import {
  canonicalConfigJson,
  configHash,
  deadlineMs,
  defaultFineTuneStepIndices,
  describeConfigKeys,
  indexToPaperStep,
  loadConfigFile,
  paperStepToIndex,
  parseConfig,
  resolveConfig,
  resolveRunDir,
  totalSteps,
} from "./config.ts";
import { ConfigError, formatIssue } from "./schema.ts";

const MIN = "scorers: [{name: aesthetic}]\n";

function configError(text: string): ConfigError {
  return assertThrows(() => parseConfig(text), ConfigError) as ConfigError;
}

function messages(text: string): string[] {
  return configError(text).issues.map(formatIssue);
}

Deno.test("config: defaults are RDPO_SPEC.md section 5 (and the paper's fine-tune steps)", () => {
  const c = parseConfig(MIN);
  assertEquals(c.method, "rdpo");
  assertEquals(c.mode, "train");
  assertEquals(c.loss, { kind: "rdpo", beta: 0.1, lambda: 100, ratio_clamp: 0 });
  assertEquals(c.lora, { rank: 4, alpha: 4, target_modules: ["to_q", "to_k", "to_v", "to_out.0"] });
  assertEquals(c.optimizer.lr, 3e-5);
  assertEquals(c.optimizer.betas, [0.9, 0.999]);
  assertEquals(c.training.prompt_batch_size, 2);
  assertEquals(c.sampling, {
    sampler: "ddim",
    num_inference_steps: 20,
    eta: 1.0,
    guidance_scale: 5.0,
    reduction: "mean",
  });
  assertEquals(c.preference.estimator, "delta_q");
  assertEquals(c.preference.pairing, "shared_parent");
  assertEquals(c.preference.num_candidates, 2);
  assertEquals(c.preference.min_margin, 0);
  // Paper steps 20, 16, 12, 8, 4 of T = 20 are our step indices 0, 4, 8, 12, 16.
  assertEquals(c.preference.finetune_step_indices, [0, 4, 8, 12, 16]);
  assertEquals(c.eval.samples_per_prompt, 5);
  assertEquals(c.eval.scorers, ["aesthetic"]);
  assertEquals(c.training.steps, 100);
  assertEquals(c.scorers, [{ name: "aesthetic", weight: 1 }]);
});

Deno.test("config: YAML exponent numbers (3e-5) are numbers", () => {
  const c = parseConfig(MIN + "optimizer: {lr: 3e-5, eps: 1.0e-6, weight_decay: 0}");
  assertEquals([c.optimizer.lr, c.optimizer.eps, c.optimizer.weight_decay], [3e-5, 1e-6, 0]);
});

Deno.test("config: JSON text is accepted as well as YAML", () => {
  const c = parseConfig(JSON.stringify({ scorers: [{ name: "pickscore", weight: 2 }], loss: { beta: 0.5 } }));
  assertEquals(c.scorers, [{ name: "pickscore", weight: 2 }]);
  assertEquals(c.loss.beta, 0.5);
});

Deno.test("config: a bad enum value names the path and the allowed values", () => {
  const e = configError(MIN + "preference: {estimator: foo}");
  assertEquals(e.message, `preference.estimator: "foo" is not one of final, q, delta_q`);
  assert(e instanceof InvalidArgumentError);
  assertEquals(e.field, "preference.estimator");
  assertEquals(
    messages(MIN + "preference: {estimator: delta-q}"),
    [`preference.estimator: "delta-q" is not one of final, q, delta_q (did you mean "delta_q"?)`],
  );
});

Deno.test("config: unknown keys are rejected with a suggestion, at any depth", () => {
  assertEquals(messages(MIN + "loss: {lamda: 10}"), [`loss.lamda: unknown key (did you mean "lambda"?)`]);
  assertEquals(messages(MIN + "sampler: ddim"), [`sampler: unknown key (did you mean "sampling"?)`]);
  assertEquals(
    messages("scorers: [{name: a, wieght: 2}]")[0],
    `scorers[0].wieght: unknown key (did you mean "weight"?)`,
  );
  const far = messages(MIN + "optimizer: {zzzzzz: 1}")[0];
  assert(far.startsWith("optimizer.zzzzzz: unknown key; known keys: lr, betas, eps"), far);
});

Deno.test("config: every problem is reported at once", () => {
  const e = configError("scorers: []\nloss: {beta: -1}\nsampling: {num_inference_steps: 2.5}");
  assertEquals(e.issues.map((i) => i.path), ["sampling.num_inference_steps", "loss.beta", "scorers"]);
  assert(e.message.includes("3 problems"), e.message);
  assert(e.message.includes("loss.beta: -1 is out of range: must be > 0"), e.message);
  assert(e.message.includes("scorers: needs at least 1 item(s), got 0"), e.message);
});

Deno.test("config: type errors say what was expected", () => {
  assertEquals(messages(MIN + "loss: {beta: high}"), [`loss.beta: expected a finite number, got "high"`]);
  assertEquals(messages(MIN + "prompts: {shuffle: 1}"), [
    "prompts.shuffle: expected true or false, got number 1",
  ]);
  assertEquals(messages(MIN + "loss: 3"), ["loss: expected an object (mapping), got number 3"]);
  assertEquals(messages("{}"), ["scorers: required (list of {name, weight})"]);
  assert(
    messages(MIN + "services: {policy: 'nohost'}")[0].startsWith(`services.policy: "nohost" is not valid`),
  );
  assertEquals(
    parseConfig(MIN + "services: {reward: 'dns:///reward.ns.svc:50051'}").services.reward,
    "dns:///reward.ns.svc:50051",
  );
});

Deno.test("config: syntax errors and duplicate keys are clear", () => {
  assert(configError("scorers: [").message.includes("not valid YAML/JSON"));
  assert(configError(MIN + "seed: 1\nseed: 2").message.includes("not valid YAML/JSON"));
  assertEquals(messages("- a\n- b"), ["config: expected a mapping of keys at the top level"]);
});

Deno.test("config: eta must be > 0 to train (spec section 1)", () => {
  const [m] = messages(MIN + "sampling: {eta: 0}");
  assert(m.startsWith("sampling.eta: must be > 0 to train"), m);
  assert(m.includes("RDPO_SPEC.md section 1"), m);
  assertEquals(parseConfig(MIN + "sampling: {eta: 0.5}").sampling.eta, 0.5);
  assertEquals(messages(MIN + "sampling: {sampler: ddpm, eta: 0.3}")[0].split(":")[0], "sampling.eta");
});

Deno.test("config: pairing rules (K >= 2 shared, exactly 2 independent, final needs independent)", () => {
  assertEquals(messages(MIN + "preference: {num_candidates: 1}"), [
    "preference.num_candidates: 1 is out of range: must be >= 2",
  ]);
  assertEquals(parseConfig(MIN + "preference: {num_candidates: 4}").preference.num_candidates, 4);
  assertEquals(
    messages(MIN + "preference: {pairing: independent, num_candidates: 3, estimator: q}"),
    ["preference.num_candidates: 3: independent pairing (D3PO) uses exactly 2 trajectories per prompt"],
  );
  assert(
    messages(MIN + "preference: {estimator: final}")[0].startsWith(`preference.estimator: "final" needs`),
  );
  assert(
    messages(MIN + "preference: {pairing: independent, continue_from: random}")[0].startsWith(
      "preference.continue_from",
    ),
  );
});

Deno.test("config: loss options that the chosen loss ignores are errors", () => {
  const [m] = messages(MIN + "loss: {kind: dpo, lambda: 10}");
  assertEquals(
    m,
    `loss.lambda: 10 (set in the config) has no effect: only the rdpo loss has a penalty (loss.kind is dpo); ` +
      `remove it or set it to 100`,
  );
  assert(
    messages(MIN + "loss: {ratio_clamp: 0.2}")[0].startsWith("loss.ratio_clamp: 0.2 (set in the config)"),
  );
  assertEquals(parseConfig(MIN + "loss: {kind: dpo, ratio_clamp: 0.2}").loss.ratio_clamp, 0.2);
  assertEquals(parseConfig(MIN + "loss: {lambda: 10}").loss.lambda, 10);
  assert(messages(MIN + "loss: {ratio_clamp: 1}")[0].includes("must be >= 0 and < 1"));
  const dd = messages(MIN + "loss: {kind: diffusion_dpo}");
  assertEquals(dd.length, 2);
  assert(dd.every((x) => x.startsWith("loss.kind: diffusion_dpo")), dd.join("\n"));
  const ok = parseConfig(
    MIN + "loss: {kind: diffusion_dpo}\npreference: {pairing: independent, estimator: final}",
  );
  assertEquals(ok.loss.kind, "diffusion_dpo");
});

Deno.test("config: step numbering, paper steps <-> 0-based step_index", () => {
  assertEquals(paperStepToIndex(20, 20), 0);
  assertEquals(paperStepToIndex(1, 20), 19);
  assertEquals(indexToPaperStep(0, 20), 20);
  for (let i = 0; i < 20; i++) assertEquals(paperStepToIndex(indexToPaperStep(i, 20), 20), i);
  assertEquals(defaultFineTuneStepIndices(20), [0, 4, 8, 12, 16]);
  assertEquals(defaultFineTuneStepIndices(20).map((i) => indexToPaperStep(i, 20)), [20, 16, 12, 8, 4]);
  assertEquals(defaultFineTuneStepIndices(10), [0, 2, 4, 6, 8]);
  assertEquals(defaultFineTuneStepIndices(3), [0, 1, 2]);
  assertEquals(defaultFineTuneStepIndices(50), [0, 10, 20, 30, 40]);
});

Deno.test("config: finetune_steps (paper) and finetune_step_indices (0-based) resolve to indices", () => {
  const paper = parseConfig(MIN + "preference: {finetune_steps: [4, 8, 12, 16, 20]}");
  assertEquals(paper.preference.finetune_step_indices, [0, 4, 8, 12, 16]);
  assertEquals(paper.preference.finetune_steps, null);
  assertEquals(
    parseConfig(MIN + "preference: {finetune_step_indices: [19, 0]}").preference.finetune_step_indices,
    [
      0,
      19,
    ],
  );
  assertEquals(
    parseConfig(MIN + "preference: {finetune_steps: all}\nsampling: {num_inference_steps: 4}")
      .preference.finetune_step_indices,
    [0, 1, 2, 3],
  );
  assertEquals(
    messages(MIN + "preference: {finetune_steps: [21, 0]}"),
    [
      "preference.finetune_steps[0]: 21 is out of range: paper steps run from 20 (first) to 1 (last) for T = 20",
      "preference.finetune_steps[1]: 0 is out of range: paper steps run from 20 (first) to 1 (last) for T = 20",
    ],
  );
  assertEquals(messages(MIN + "preference: {finetune_step_indices: [20]}").length, 1);
  assert(messages(MIN + "preference: {finetune_step_indices: [1, 1]}")[0].includes("duplicate step 1"));
  assert(
    messages(MIN + "preference: {finetune_steps: [20], finetune_step_indices: [0]}")[0].includes("not both"),
  );
  assert(
    messages(MIN + "preference: {finetune_steps: some}")[0].includes(`expected a list of integers or "all"`),
  );
});

Deno.test("config: training length, steps or epochs", () => {
  assert(messages(MIN + "training: {steps: 5, epochs: 2}")[0].includes("not both"));
  const byEpochs = parseConfig(MIN + "training: {epochs: 3, prompt_batch_size: 2}");
  assertEquals(byEpochs.training.steps, null);
  assertEquals(totalSteps(byEpochs, 45), 3 * 23);
  assertEquals(totalSteps(parseConfig(MIN + "training: {steps: 7}"), 45), 7);
});

Deno.test("config: resolving a resolved config changes nothing (config.json round trip)", () => {
  for (
    const text of [
      MIN,
      MIN + "method: d3po",
      MIN + "method: tailorpo\npreference: {finetune_steps: all}",
      MIN + "method: best_of_n_q\ntraining: {epochs: 2}",
      MIN + "method: rdpo_star\neval: {scorers: [hpsv2, pickscore]}",
    ]
  ) {
    const once = parseConfig(text);
    const twice = parseConfig(canonicalConfigJson(once));
    assertEquals(twice, once);
    assertEquals(configHash(twice), configHash(once));
  }
});

Deno.test("config: hash ignores key order and operational keys, changes with the math", () => {
  const a = parseConfig("loss: {beta: 0.2, lambda: 10}\nscorers: [{name: aesthetic}]");
  const b = parseConfig(
    JSON.stringify({ scorers: [{ name: "aesthetic" }], loss: { lambda: 10, beta: 0.2 } }),
  );
  assertEquals(configHash(a), configHash(b));
  assert(/^[0-9a-f]{64}$/.test(configHash(a)));
  const moved = parseConfig(
    "loss: {beta: 0.2, lambda: 10}\nscorers: [{name: aesthetic}]\nservices: {policy: 'h:1'}\n" +
      "training: {steps: 999}\ncheckpoint: {every: 3}\nrun_dir: elsewhere",
  );
  assertEquals(configHash(moved), configHash(a));
  assertNotEquals(configHash(parseConfig("loss: {beta: 0.3, lambda: 10}\n" + MIN)), configHash(a));
  assertNotEquals(configHash(parseConfig(MIN + "seed: 1")), configHash(parseConfig(MIN)));
});

Deno.test("config: helpers for the loop (deadlines, run dir, key list)", () => {
  const c = parseConfig(MIN + "rpc: {deadline_ms: {default: 1000, train_step: 5000}}");
  assertEquals(deadlineMs(c, "train_step"), 5000);
  assertEquals(deadlineMs(c, "score"), 1000);
  assertEquals(resolveRunDir(parseConfig(MIN + "run_dir: runs/x")), "runs/x");
  assert(/^runs\/rdpo-[0-9a-f]{8}$/.test(resolveRunDir(c)));
  const keys = describeConfigKeys();
  assert(
    keys.some((k) => k.startsWith('preference.estimator: one of final, q, delta_q (default "delta_q")')),
  );
  assert(keys.some((k) => k.startsWith("loss.lambda:")));
  assert(keys.length > 50, `${keys.length} keys`);
});

Deno.test("config: user paths are reported", () => {
  const { userPaths } = resolveConfig({ scorers: [{ name: "a" }], loss: { beta: 0.2 } });
  assertEquals(userPaths.sort(), ["loss.beta", "scorers"]);
});

Deno.test("config: the shipped example configs are valid", async () => {
  const dir = new URL("./configs/", import.meta.url);
  let n = 0;
  for await (const entry of Deno.readDir(dir)) {
    if (!entry.name.endsWith(".yaml")) continue;
    const c = await loadConfigFile(new URL(entry.name, dir).pathname);
    assert(c.scorers.length > 0);
    n++;
  }
  assert(n >= 2, `only ${n} example configs`);
});

Deno.test("config: the README lists every key", async () => {
  const readme = await Deno.readTextFile(new URL("./README.md", import.meta.url));
  const missing = describeConfigKeys().map((line) => line.split(":")[0]).filter((key) =>
    !readme.includes(`\n${key}:`)
  );
  assertEquals(missing, []);
});

Deno.test("config: services.policy is one address, a YAML list of replicas, or a dns:/// name", () => {
  assertEquals(parseConfig(MIN + "services: {policy: '127.0.0.1:50052'}").services.policy, "127.0.0.1:50052");
  assertEquals(
    parseConfig(MIN + "services:\n  policy:\n    - policy-0.policy:50052\n    - policy-1.policy:50052\n")
      .services.policy,
    ["policy-0.policy:50052", "policy-1.policy:50052"],
  );
  assertEquals(
    parseConfig(MIN + "services: {policy: 'dns:///policy.ns.svc.cluster.local:50052'}").services.policy,
    "dns:///policy.ns.svc.cluster.local:50052",
  );
  assertEquals(messages(MIN + "services: {policy: []}"), ["services.policy: needs at least 1 address"]);
  assertEquals(messages(MIN + "services: {policy: ['a:1', 'a:1']}"), [
    `services.policy[1]: duplicate address "a:1"`,
  ]);
  assert(
    messages(MIN + "services: {policy: ['a:1', 'nohost']}")[0].startsWith(`services.policy[1]: "nohost"`),
  );
  assertEquals(parseConfig(MIN).services.policy, "127.0.0.1:50052");
});
