import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { InvalidArgumentError } from "../errors.ts";
import { fixturePath, hasFixtures } from "../testing/fixtures.ts";
import { readGoldenDdimConfig, readGoldenDdimIo } from "./golden_ddim_fixture.ts";
import { guidedNoise } from "./guidance.ts";
import { schedulerStep, stepMean } from "./sampler_step.ts";
import { buildNoiseSchedule, noiseScheduleFromDiffusers, STABLE_DIFFUSION_SCHEDULE } from "./schedule.ts";
import { type SamplerConfig, stepCoefficients, stepCoefficientsAt } from "./step_coefficients.ts";
import { maxAbsDiff, take, testBackends, testValues, useBackend } from "./test_support.ts";

const GOLDEN = fixturePath("golden", "ddim");
const schedule = buildNoiseSchedule(STABLE_DIFFUSION_SCHEDULE);
const ddim1: SamplerConfig = { sampler: "ddim", numInferenceSteps: 20, eta: 1 };

for (const backend of testBackends()) {
  Deno.test({
    name: `RDPO_SPEC 1: DDIM step matches diffusers' DDIMScheduler.step on every golden case [${backend}]`,
    ignore: !hasFixtures(GOLDEN),
    fn: async () => {
      await useBackend(backend);
      const { config, tolerance } = await readGoldenDdimConfig(GOLDEN);
      const { timesteps, cases } = await readGoldenDdimIo(GOLDEN);
      assert.ok(cases.length > 0, "no case<N>.* tensors in io.safetensors");
      const fixtureSchedule = noiseScheduleFromDiffusers(config);
      for (const c of cases) {
        const sampler: SamplerConfig = { sampler: "ddim", numInferenceSteps: timesteps.length, eta: c.eta };
        const coeffs = stepCoefficients(fixtureSchedule, sampler, c.timestep);
        assert.ok(
          Math.abs(coeffs.sigma - c.stdDevT) <= tolerance,
          `${c.name} std_dev_t ${coeffs.sigma} vs ${c.stdDevT}`,
        );
        const sample = tf.tensor(c.sample, c.shape);
        const eps = tf.tensor(c.modelOutput, c.shape);
        const noise = tf.tensor(c.varianceNoise, c.shape);
        const out = schedulerStep(sample, eps, coeffs, noise);
        const prevErr = maxAbsDiff(await take(out.prevSample), c.prevSample);
        const x0Err = maxAbsDiff(await take(out.predOriginalSample), c.predOriginalSample);
        out.mean.dispose();
        tf.dispose([sample, eps, noise]);
        assert.ok(
          prevErr <= tolerance,
          `${c.name} (t=${c.timestep}, eta=${c.eta}) prev_sample error ${prevErr}`,
        );
        assert.ok(x0Err <= tolerance, `${c.name} pred_original_sample error ${x0Err}`);
      }
    },
  });
}

Deno.test("RDPO_SPEC 1: x0hat = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t), mu and x_prev = mu + sigma z", async () => {
  await useBackend();
  const shape = [2, 3, 2, 2];
  const n = 24;
  const xt = testValues(n, 1);
  const eps = testValues(n, 2);
  const z = testValues(n, 3);
  const c = stepCoefficientsAt(schedule, ddim1, 7);
  const out = schedulerStep(tf.tensor(xt, shape), tf.tensor(eps, shape), c, tf.tensor(z, shape));
  const x0 = await take(out.predOriginalSample);
  const mu = await take(out.mean);
  const prev = await take(out.prevSample);
  for (let i = 0; i < n; i++) {
    const ex0 = (xt[i] - Math.sqrt(1 - c.alphaProdT) * eps[i]) / Math.sqrt(c.alphaProdT);
    const emu = Math.sqrt(c.alphaProdTPrev) * ex0 + Math.sqrt(1 - c.alphaProdTPrev - c.sigma ** 2) * eps[i];
    assert.ok(Math.abs(x0[i] - ex0) < 1e-5);
    assert.ok(Math.abs(mu[i] - emu) < 1e-5);
    assert.ok(Math.abs(prev[i] - (emu + c.sigma * z[i])) < 1e-5);
  }
});

Deno.test("per-item step coefficients equal one step per item", async () => {
  await useBackend();
  const shape = [2, 2, 2, 2];
  const xt = tf.tensor(testValues(16, 4), shape);
  const eps = tf.tensor(testValues(16, 5), shape);
  const c0 = stepCoefficientsAt(schedule, ddim1, 2);
  const c1 = stepCoefficientsAt(schedule, { ...ddim1, sampler: "ddpm" }, 15);
  const both = await take(stepMean(xt, eps, [c0, c1]).mean);
  const first = await take(stepMean(xt, eps, c0).mean);
  const second = await take(stepMean(xt, eps, c1).mean);
  assert.ok(maxAbsDiff(both.slice(0, 8), first.slice(0, 8)) < 1e-6);
  assert.ok(maxAbsDiff(both.slice(8), second.slice(8)) < 1e-6);
  assert.throws(() => stepMean(xt, eps, [c0, c1, c0]), (e: unknown) => e instanceof InvalidArgumentError);
  tf.dispose([xt, eps]);
});

Deno.test("clip_sample clamps x0hat to the configured range", async () => {
  await useBackend();
  const clipped = buildNoiseSchedule({
    ...STABLE_DIFFUSION_SCHEDULE,
    clipSample: true,
    clipSampleRange: 0.5,
  });
  const c = stepCoefficientsAt(clipped, ddim1, 0);
  const xt = tf.tensor(testValues(8, 6, 3), [1, 8]);
  const eps = tf.tensor(testValues(8, 7), [1, 8]);
  const x0 = await take(stepMean(xt, eps, c).predOriginalSample);
  assert.ok(x0.every((v) => v >= -0.5 && v <= 0.5));
  assert.ok(x0.some((v) => Math.abs(v) === 0.5));
  tf.dispose([xt, eps]);
});

Deno.test("without noise or with eta = 0 the step is deterministic (x_prev = mu)", async () => {
  await useBackend();
  const xt = tf.tensor(testValues(8, 8), [2, 4]);
  const eps = tf.tensor(testValues(8, 9), [2, 4]);
  const z = tf.tensor(testValues(8, 10), [2, 4]);
  const c = stepCoefficientsAt(schedule, { ...ddim1, eta: 0 }, 4);
  const out = schedulerStep(xt, eps, c, z);
  assert.deepEqual(await take(out.prevSample), await take(out.mean));
  out.predOriginalSample.dispose();
  tf.dispose([xt, eps, z]);
});

Deno.test("mismatched shapes name the field", async () => {
  await useBackend();
  const xt = tf.zeros([2, 4]);
  const c = stepCoefficientsAt(schedule, ddim1, 0);
  const field = (f: string) => (e: unknown) => e instanceof InvalidArgumentError && e.field === f;
  assert.throws(() => stepMean(xt, tf.zeros([2, 5]), c), field("noise_pred"));
  assert.throws(() => schedulerStep(xt, tf.zeros([2, 4]), c, tf.zeros([4, 2])), field("noise"));
  assert.throws(() => stepMean(tf.zeros([4]), tf.zeros([4]), c), field("latents"));
});

Deno.test("RDPO_SPEC 1: classifier-free guidance eps = eps_u + w (eps_c - eps_u)", async () => {
  await useBackend();
  const u = testValues(6, 11);
  const cnd = testValues(6, 12);
  const g = await take(guidedNoise(tf.tensor(u, [1, 6]), tf.tensor(cnd, [1, 6]), 5));
  for (let i = 0; i < 6; i++) assert.ok(Math.abs(g[i] - (u[i] + 5 * (cnd[i] - u[i]))) < 1e-5);
  // w = 1 is the conditional prediction exactly; w = 0 the unconditional one.
  assert.deepEqual(
    await take(guidedNoise(tf.tensor(u, [1, 6]), tf.tensor(cnd, [1, 6]), 1)),
    Float64Array.from(cnd),
  );
  assert.deepEqual(
    await take(guidedNoise(tf.tensor(u, [1, 6]), tf.tensor(cnd, [1, 6]), 0)),
    Float64Array.from(u),
  );
  assert.throws(() => guidedNoise(tf.zeros([1, 6]), tf.zeros([1, 6]), NaN), InvalidArgumentError);
});
