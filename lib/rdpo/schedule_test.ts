import assert from "node:assert/strict";
import { InvalidArgumentError } from "../errors.ts";
import { SafetensorsFile } from "../tensor/safetensors.ts";
import { fixturePath, hasFixtures } from "../testing/fixtures.ts";
import {
  alphaCumprodAt,
  buildNoiseSchedule,
  linspaceFloat32,
  noiseScheduleFromDiffusers,
  parseScheduleConfig,
  STABLE_DIFFUSION_SCHEDULE,
} from "./schedule.ts";
import { readGoldenDdimConfig } from "./golden_ddim_fixture.ts";
import { maxAbsDiff } from "./test_support.ts";

const GOLDEN = fixturePath("golden", "ddim");

Deno.test("RDPO_SPEC 1: scaled_linear betas are linspace(sqrt(0.00085), sqrt(0.012), 1000)^2", () => {
  const s = buildNoiseSchedule(STABLE_DIFFUSION_SCHEDULE);
  assert.equal(s.betas.length, 1000);
  assert.ok(Math.abs(s.betas[0] - 0.00085) < 1e-9);
  assert.ok(Math.abs(s.betas[999] - 0.012) < 1e-9);
  // Middle value against the float64 formula.
  const root = Math.sqrt(0.00085) + (Math.sqrt(0.012) - Math.sqrt(0.00085)) * 500 / 999;
  assert.ok(Math.abs(s.betas[500] - root * root) < 1e-9);
});

Deno.test("RDPO_SPEC 1: alphas_cumprod is the running product of 1 - beta", () => {
  const s = buildNoiseSchedule(STABLE_DIFFUSION_SCHEDULE);
  let acc = 1;
  for (let t = 0; t < 1000; t++) {
    acc *= 1 - s.betas[t];
    assert.ok(Math.abs(s.alphasCumprod[t] - acc) < 1e-5, `t=${t}`);
  }
  for (let t = 1; t < 1000; t++) assert.ok(s.alphasCumprod[t] < s.alphasCumprod[t - 1]);
  // set_alpha_to_one false: the final abar is abar[0] (RDPO_SPEC.md section 1).
  assert.equal(s.finalAlphaCumprod, s.alphasCumprod[0]);
});

Deno.test("linspaceFloat32 starts at start, ends within float32 rounding of end, and is monotone", () => {
  for (const n of [2, 11, 17, 1000]) {
    const v = linspaceFloat32(0.1, 0.7, n);
    assert.equal(v[0], Math.fround(0.1));
    assert.ok(Math.abs(v[n - 1] - 0.7) < 1e-6, `n=${n}: ${v[n - 1]}`);
    for (let i = 1; i < n; i++) assert.ok(v[i] > v[i - 1], `n=${n} i=${i}`);
    for (let i = 0; i < n; i++) assert.ok(Math.abs(v[i] - (0.1 + 0.6 * i / (n - 1))) < 1e-6);
  }
});

Deno.test("parseScheduleConfig reads diffusers keys and defaults missing ones like diffusers", () => {
  const c = parseScheduleConfig({
    _class_name: "DDIMScheduler",
    beta_start: 0.00085,
    beta_end: 0.012,
    beta_schedule: "scaled_linear",
    set_alpha_to_one: false,
    steps_offset: 1,
    clip_sample: false,
    skip_prk_steps: true,
  });
  assert.equal(c.numTrainTimesteps, 1000);
  assert.equal(c.timestepSpacing, "leading");
  assert.equal(c.stepsOffset, 1);
  assert.equal(c.setAlphaToOne, false);
  // Missing clip_sample would default to diffusers' true.
  assert.equal(parseScheduleConfig({}).clipSample, true);
  assert.equal(buildNoiseSchedule(parseScheduleConfig({ set_alpha_to_one: true })).finalAlphaCumprod, 1);
});

Deno.test("parseScheduleConfig rejects unsupported options by name", () => {
  const cases: [Record<string, unknown>, string][] = [
    [{ prediction_type: "v_prediction" }, "scheduler.prediction_type"],
    [{ beta_schedule: "sigmoid" }, "scheduler.beta_schedule"],
    [{ thresholding: true }, "scheduler.thresholding"],
    [{ timestep_spacing: "karras" }, "scheduler.timestep_spacing"],
    [{ num_train_timesteps: 10.5 }, "scheduler.num_train_timesteps"],
    [{ beta_start: "0.1" }, "scheduler.beta_start"],
    [{ trained_betas: [0.1, 0.2] }, "scheduler.trained_betas"],
  ];
  for (const [json, field] of cases) {
    assert.throws(
      () => parseScheduleConfig(json),
      (e: unknown) => e instanceof InvalidArgumentError && e.field === field,
    );
  }
  assert.throws(() => parseScheduleConfig(null), InvalidArgumentError);
});

Deno.test("linear and cosine schedules and trained_betas build monotone schedules", () => {
  for (const json of [{ beta_schedule: "linear" }, { beta_schedule: "squaredcos_cap_v2" }]) {
    const s = noiseScheduleFromDiffusers(json);
    assert.equal(s.alphasCumprod.length, 1000);
    for (let t = 1; t < 1000; t++) assert.ok(s.alphasCumprod[t] <= s.alphasCumprod[t - 1]);
  }
  const tb = noiseScheduleFromDiffusers({ num_train_timesteps: 3, trained_betas: [0.5, 0.5, 0.5] });
  assert.deepEqual(Array.from(tb.alphasCumprod), [0.5, 0.25, 0.125]);
});

Deno.test("alphaCumprodAt rejects timesteps outside the schedule", () => {
  const s = buildNoiseSchedule(STABLE_DIFFUSION_SCHEDULE);
  assert.equal(alphaCumprodAt(s, 0), s.alphasCumprod[0]);
  for (const t of [-1, 1000, 1.5]) {
    assert.throws(
      () => alphaCumprodAt(s, t),
      (e: unknown) => e instanceof InvalidArgumentError && e.field === "timestep",
    );
  }
});

Deno.test({
  name: "RDPO_SPEC 1: alphas_cumprod matches diffusers (golden/ddim) within the fixture tolerance",
  ignore: !hasFixtures(GOLDEN),
  fn: async () => {
    const { config, tolerance } = await readGoldenDdimConfig(GOLDEN);
    const schedule = noiseScheduleFromDiffusers(config);
    const f = await SafetensorsFile.open(`${GOLDEN}/io.safetensors`);
    try {
      const expected = await f.readFloat32("alphas_cumprod");
      const err = maxAbsDiff(schedule.alphasCumprod, expected.data);
      assert.ok(err <= tolerance, `max abs error ${err} > ${tolerance}`);
    } finally {
      f.close();
    }
  },
});
