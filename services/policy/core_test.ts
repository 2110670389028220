import * as tf from "@tensorflow/tfjs-core";
import { join } from "node:path";
import {
  assert,
  assertAlmostEquals,
  assertEquals,
  assertNotEquals,
  assertRejects,
} from "../../lib/testing/assert.ts";
import {
  DeadlineExceededError,
  FailedPreconditionError,
  InvalidArgumentError,
  ResourceExhaustedError,
} from "../../lib/errors.ts";
import { initBackend } from "../../lib/tensor/backend.ts";
import { readSafetensors } from "../../lib/tensor/safetensors.ts";
import { DEFAULT_ADAM } from "./adam.ts";
import { DEFAULT_STEP, type HostTensor, PolicyCore, type StepOptions, type TrainStepInput } from "./core.ts";
import { loadPipeline } from "./pipeline.ts";
import { writeTinyModel } from "./testing/tiny_model.ts";

// POLICY_TEST_BACKEND=webgpu (or cpu) runs the same tests on another backend.
const backend = (Deno.env.get("POLICY_TEST_BACKEND") ?? "wasm") as "wasm" | "webgpu" | "cpu";
await initBackend(backend);
const modelDir = await Deno.makeTempDir({ prefix: "rdpo-tiny-" });
await writeTinyModel(modelDir);
const adapterRoot = await Deno.makeTempDir({ prefix: "rdpo-adapters-" });

async function makeCore(role: "policy" | "reference" = "policy"): Promise<PolicyCore> {
  const pipeline = await loadPipeline(modelDir);
  return new PolicyCore(pipeline, {
    role,
    lora: { rank: 2, alpha: 2, seed: 3 },
    adapterRoot,
    maxBatch: 64,
    backend,
  });
}

function latents(b: number, seed: number): HostTensor {
  const data = new Float32Array(b * 3 * 8 * 8);
  let s = seed;
  for (let i = 0; i < data.length; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    data[i] = (s / 4294967296 - 0.5) * 2;
  }
  return { shape: [b, 3, 8, 8], data };
}

const step: StepOptions = { ...DEFAULT_STEP, numInferenceSteps: 10, guidanceScale: 3 };
const prompts = ["a red circle", "a blue square"];

function sample(core: PolicyCore, x: HostTensor, stepIndex: number, extra = {}) {
  return core.sampleCandidates({
    conditioning: { prompts },
    latents: x,
    stepIndex,
    step,
    numCandidates: 3,
    noise: { seed: 7n, stream: 100n },
    predictCandidateNoise: true,
    decodeCandidates: true,
    decodeParent: true,
    role: "policy",
    ...extra,
  });
}

/** A shared_parent pair batch from one sampling step: candidate 0 wins, candidate 1 loses. */
async function pairBatch(core: PolicyCore, stepIndex: number, seed: number): Promise<TrainStepInput> {
  const x = latents(2, seed);
  const s = await sample(core, x, stepIndex);
  const d = 3 * 8 * 8;
  const pick = (k: number): HostTensor => {
    const out = new Float32Array(2 * d);
    for (let b = 0; b < 2; b++) {
      out.set(s.candidates.data.subarray((b * 3 + k) * d, (b * 3 + k + 1) * d), b * d);
    }
    return { shape: [2, 3, 8, 8], data: out };
  };
  const side = (k: number) => ({
    conditioning: { prompts },
    latents: x,
    nextLatents: pick(k),
    stepIndices: [stepIndex],
  });
  return {
    winners: side(0),
    losers: side(1),
    step,
    loss: { kind: "rdpo", beta: 0.1, lambda: 100, ratioClamp: 0 },
    optimizer: { ...DEFAULT_ADAM, learningRate: 1e-2 },
    requestId: "",
    returnGradients: false,
    noise: { seed: 1n, stream: 0n },
  };
}

Deno.test("policy core: sampling is deterministic, candidates differ, shapes and images match", async () => {
  const core = await makeCore();
  try {
    const x = latents(2, 1);
    const a = await sample(core, x, 2);
    const b = await sample(core, x, 2);
    assertEquals(a.candidates.shape, [2, 3, 3, 8, 8]);
    assertEquals(a.logProbs!.shape, [2, 3]);
    assertEquals(a.candidates.data, b.candidates.data);
    assertEquals(a.candidateImages.length, 6);
    assertEquals(a.parentImages.length, 2);
    assertEquals(a.candidateImages[0].data.length, 8 * 8 * 3);
    const d = 3 * 8 * 8;
    assertNotEquals(a.candidates.data.subarray(0, d), a.candidates.data.subarray(d, 2 * d));
    // Reusing the parent's noise prediction (RDPO_SPEC.md section 3 cost note) changes nothing.
    const c = await sample(core, x, 2, { parentNoisePred: a.parentNoisePred });
    assertEquals(c.candidates.data, a.candidates.data);
    assertEquals(c.logProbs!.data, a.logProbs!.data);
    // Another noise stream gives other candidates.
    const e = await sample(core, x, 2, { noise: { seed: 7n, stream: 101n } });
    assertNotEquals(e.candidates.data, a.candidates.data);
  } finally {
    core.dispose();
  }
});

Deno.test("policy core: the candidate's noise prediction is what the next step computes (reuse is exact)", async () => {
  const core = await makeCore();
  try {
    const a = await sample(core, latents(2, 4), 3);
    const d = 3 * 8 * 8;
    const cand0 = new Float32Array(2 * d);
    const eps0 = new Float32Array(2 * d);
    for (let b = 0; b < 2; b++) {
      cand0.set(a.candidates.data.subarray(b * 3 * d, (b * 3 + 1) * d), b * d);
      eps0.set(a.candidateNoisePred!.data.subarray(b * 3 * d, (b * 3 + 1) * d), b * d);
    }
    const next = await sample(core, { shape: [2, 3, 8, 8], data: cand0 }, 4);
    for (let i = 0; i < eps0.length; i++) assertAlmostEquals(next.parentNoisePred.data[i], eps0[i], 1e-5);
  } finally {
    core.dispose();
  }
});

Deno.test("policy core: at initialisation policy equals reference and h = 0 exactly (RDPO_SPEC.md 2)", async () => {
  const core = await makeCore();
  try {
    const x = latents(2, 2);
    const p = await core.predictNoise({
      conditioning: { prompts },
      latents: x,
      timesteps: [500],
      guidanceScale: 3,
      role: "policy",
    });
    const r = await core.predictNoise({
      conditioning: { prompts },
      latents: x,
      timesteps: [500],
      guidanceScale: 3,
      role: "reference",
    });
    assertEquals(p.data, r.data);
    const batch = await pairBatch(core, 1, 5);
    const lr = await core.logRatios({ transitions: batch.winners, step });
    assertEquals([...lr.logRatios.data], [0, 0]);
    assertEquals(lr.policyLogProbs.data, lr.referenceLogProbs.data);
  } finally {
    core.dispose();
  }
});

Deno.test("policy core: a train step starts at log 2, moves the adapter, and accounts steps exactly", async () => {
  const core = await makeCore();
  try {
    const before = (await core.getAdapter(false)).checksum;
    const batch = { ...(await pairBatch(core, 2, 6)), requestId: "step-0", expectedOptimizerStep: 0 };
    const r = await core.trainStep(batch);
    assertAlmostEquals(r.loss, Math.log(2), 1e-6); // h_w = h_l = 0 before the update (RDPO_SPEC.md 5)
    assertEquals(r.optimizerStep, 1);
    assert(r.gradNorm > 0, "LoRA B gets a gradient at initialisation");
    assertNotEquals(r.adapterChecksum, before);
    // A retry of the same request is answered from the record, not applied twice.
    const again = await core.trainStep(batch);
    assertEquals(again, r);
    assertEquals((await core.getAdapter(false)).optimizerStep, 1);
    // A request for a step the adapter is not at is refused.
    await assertRejects(
      () => core.trainStep({ ...batch, requestId: "other", expectedOptimizerStep: 0 }),
      FailedPreconditionError,
      "optimizer step 1",
    );
    // After the update the policy differs from the reference: h != 0.
    const lr = await core.logRatios({ transitions: batch.winners, step });
    assert(lr.logRatios.data.some((v) => v !== 0));
  } finally {
    core.dispose();
  }
});

Deno.test("policy core: adapter + optimizer state round trip resumes bit-identically", async () => {
  const a = await makeCore();
  const b = await makeCore();
  try {
    const b1 = await pairBatch(a, 1, 11);
    const b2 = await pairBatch(a, 5, 12);
    await a.trainStep(b1);
    const saved = await a.getAdapter(true);
    const r2 = await a.trainStep(b2);
    await b.loadAdapter({
      adapter: {
        weights: new Map(
          [...saved.weights].map(([k, v]) => [k, { shape: v.shape, data: v.data as Float32Array }]),
        ),
        rank: saved.rank,
        alpha: saved.alpha,
        targetModules: saved.targetModules,
        optimizerState: new Map(
          [...saved.optimizerState!].map(([k, v]) => [k, { shape: v.shape, data: v.data as Float32Array }]),
        ),
        optimizerStep: saved.optimizerStep,
      },
    });
    const r2b = await b.trainStep(b2);
    assertEquals(r2b.adapterChecksum, r2.adapterChecksum);
    assertEquals(r2b.loss, r2.loss);
    assertEquals(r2b.optimizerStep, 2);
  } finally {
    a.dispose();
    b.dispose();
  }
});

Deno.test("policy core: returned gradients applied elsewhere equal a local step", async () => {
  const a = await makeCore();
  const b = await makeCore();
  try {
    const batch = await pairBatch(a, 2, 21);
    const g = await a.trainStep({ ...batch, returnGradients: true });
    assertEquals(g.optimizerStep, 0);
    const local = await a.trainStep(batch);
    const remote = await b.applyGradients({
      gradients: new Map(
        [...g.gradients!].map(([k, v]) => [k, { shape: v.shape, data: v.data as Float32Array }]),
      ),
      optimizer: batch.optimizer,
      requestId: "",
    });
    assertEquals(remote.adapterChecksum, local.adapterChecksum);
  } finally {
    a.dispose();
    b.dispose();
  }
});

Deno.test("policy core: adapters are saved in the PEFT key format and load back", async () => {
  const a = await makeCore();
  const b = await makeCore();
  try {
    await a.trainStep(await pairBatch(a, 2, 31));
    const saved = await a.saveAdapter("run/adapter.safetensors");
    const { tensors, metadata } = await readSafetensors(join(adapterRoot, "run", "adapter.safetensors"));
    const keys = [...tensors.keys()];
    assert(
      keys.every((k) => /^unet\..+\.(to_q|to_k|to_v|to_out\.0)\.lora_[AB]\.weight$/.test(k)),
      keys.join(),
    );
    assert(keys.some((k) => k.includes("attn1.to_q.lora_A.weight")));
    assert(Object.keys(metadata).length > 0, "rank/alpha metadata is written");
    const loaded = await b.loadAdapter({ path: "run/adapter.safetensors" });
    assertEquals(loaded.checksum, saved.checksum);
    await assertRejects(() => b.loadAdapter({ path: "../escape.safetensors" }));
  } finally {
    a.dispose();
    b.dispose();
  }
});

Deno.test("policy core: bad inputs are refused with the field named", async () => {
  const core = await makeCore();
  const ref = await makeCore("reference");
  try {
    const nan = latents(2, 1);
    nan.data[5] = NaN;
    await assertRejects(() => sample(core, nan, 0), InvalidArgumentError, "latents");
    await assertRejects(
      () => sample(core, { shape: [2, 4, 8, 8], data: new Float32Array(512) }, 0),
      InvalidArgumentError,
      "latents.shape",
    );
    await assertRejects(() => sample(core, latents(2, 1), 10), InvalidArgumentError, "step_index");
    await assertRejects(() => sample(core, latents(2, 1), 0, { numCandidates: 40 }), ResourceExhaustedError);
    await assertRejects(
      () => sample(core, latents(2, 1), 0, { step: { ...step, numInferenceSteps: 201 } }),
      ResourceExhaustedError,
      "step.num_inference_steps: 201 exceeds the limit of 200 (--max-inference-steps)",
    );
    await assertRejects(
      () =>
        core.predictNoise({
          conditioning: { prompts },
          latents: latents(2, 1),
          timesteps: [1000],
          guidanceScale: 1,
          role: "policy",
        }),
      InvalidArgumentError,
      "timesteps[0]",
    );
    const batch = await pairBatch(core, 1, 3);
    await assertRejects(
      () => core.logRatios({ transitions: batch.winners, step: { ...step, eta: 0 } }),
      InvalidArgumentError,
      "eta",
    );
    await assertRejects(() => sample(ref, latents(2, 1), 0), FailedPreconditionError, "reference");
    await assertRejects(
      () => sample(core, latents(2, 1), 0, { conditioning: { prompts: ["a", "b", "c"] } }),
      InvalidArgumentError,
      "conditioning.prompts",
    );
  } finally {
    core.dispose();
    ref.dispose();
  }
});

Deno.test("policy core: no tensor leaks across many requests", async () => {
  const core = await makeCore();
  try {
    const run = async () => {
      const batch = await pairBatch(core, 2, 9);
      await core.logRatios({ transitions: batch.winners, step });
      await core.decode(latents(1, 1), true);
      await core.trainStep(batch);
      try {
        await sample(core, latents(2, 1), 99);
      } catch { /* a refused request must not leak either */ }
    };
    for (let i = 0; i < 3; i++) await run();
    const n = tf.memory().numTensors;
    for (let i = 0; i < 10; i++) await run();
    assertEquals(tf.memory().numTensors, n);
  } finally {
    core.dispose();
  }
});

Deno.test("policy core: generate is deterministic in its noise key", async () => {
  const core = await makeCore();
  try {
    const g = (stream: bigint) =>
      core.generate({
        conditioning: { prompts },
        step: { ...step, numInferenceSteps: 4 },
        noise: { seed: 3n, stream },
        batch: 2,
        role: "policy",
      });
    const a = await g(0n), b = await g(0n), c = await g(5n);
    assertEquals(a.images.length, 2);
    assertEquals(a.latents.data, b.latents.data);
    assertNotEquals(a.latents.data, c.latents.data);
  } finally {
    core.dispose();
  }
});

Deno.test("policy core: readers of the adapter never see it disposed by a concurrent load", async () => {
  // Found by the fuzzer: GetInfo's checksum awaited the adapter's tensors while a LoadAdapter
  // reset disposed them (INTERNAL "Cannot read properties of undefined (reading 'backend')").
  const core = await makeCore();
  try {
    const calls: Promise<unknown>[] = [];
    for (let i = 0; i < 6; i++) {
      calls.push(core.info(), core.getAdapter(false), core.loadAdapter({ reset: true }));
    }
    const results = await Promise.allSettled(calls);
    const failed = results.filter((r) => r.status === "rejected").map((r) => String(r.reason));
    assertEquals(failed, []);
  } finally {
    core.dispose();
  }
});

Deno.test("policy core: generate asks checkContinue before every step and stops when it throws", async () => {
  const core = await makeCore();
  try {
    const gen = (checkContinue?: () => void) =>
      core.generate({
        conditioning: { prompts },
        step: { ...step, numInferenceSteps: 8 },
        noise: { seed: 3n, stream: 0n },
        batch: 2,
        role: "policy",
        checkContinue,
      });
    await gen(); // first use builds caches that stay (schedule, prompt embeddings)
    const before = (await core.info()).tensorCount as number;
    let asked = 0;
    await assertRejects(
      () =>
        gen(() => {
          if (++asked === 3) throw new DeadlineExceededError("deadline");
        }),
      DeadlineExceededError,
    );
    assertEquals(asked, 3); // stopped at the third step, not after all eight
    assertEquals((await core.info()).tensorCount, before); // nothing leaked on the way out
  } finally {
    core.dispose();
  }
});

Deno.test("policy core: a LoadAdapter that fails keeps the adapter it had; a huge rank is refused first", async () => {
  // Found by the fuzzer: LoadAdapter{rank: 65535, no weights} replaced the adapter with a huge one
  // before noticing the weights were missing (every later call slowed down, RSS grew to GBs).
  const core = await makeCore();
  try {
    await core.loadAdapter({ reset: true, seed: 11 }); // an adapter unlike the configured one
    const before = (await core.getAdapter(false)).checksum;
    const adapter = {
      weights: new Map(),
      rank: 65535,
      alpha: 1,
      targetModules: [],
      optimizerState: new Map(),
      optimizerStep: 0,
    };
    await assertRejects(() => core.loadAdapter({ adapter }), ResourceExhaustedError, "--max-lora-rank");
    await assertRejects(
      () => core.loadAdapter({ adapter: { ...adapter, rank: 3 } }),
      FailedPreconditionError,
    );
    const after = await core.getAdapter(false);
    assertEquals(after.checksum, before);
    assertEquals(after.rank, 2);
  } finally {
    core.dispose();
  }
});
