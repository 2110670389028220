import assert from "node:assert/strict";
import { InvalidArgumentError } from "../errors.ts";
import { fixturePath, hasFixtures } from "../testing/fixtures.ts";
import { readGoldenDdimConfig, readGoldenDdimIo } from "./golden_ddim_fixture.ts";
import { parseScheduleConfig, STABLE_DIFFUSION_SCHEDULE } from "./schedule.ts";
import { inferenceTimesteps, previousTimestep, timestepPair } from "./timesteps.ts";

const GOLDEN = fixturePath("golden", "ddim");

Deno.test("RDPO_SPEC 1: leading spacing with steps_offset 1, T = 20 gives 951, 901, ..., 1", () => {
  const ts = inferenceTimesteps(STABLE_DIFFUSION_SCHEDULE, 20);
  assert.equal(ts.length, 20);
  assert.equal(ts[0], 951);
  assert.equal(ts[19], 1);
  for (let i = 1; i < 20; i++) assert.equal(ts[i - 1] - ts[i], 50);
});

Deno.test("RDPO_SPEC 1: leading spacing uses ratio = 1000 // T (T = 3 gives 667, 334, 1)", () => {
  assert.deepEqual(inferenceTimesteps(STABLE_DIFFUSION_SCHEDULE, 3), [667, 334, 1]);
  assert.deepEqual(inferenceTimesteps(STABLE_DIFFUSION_SCHEDULE, 1), [1]);
});

Deno.test("RDPO_SPEC 1: t_prev = t - ratio, negative at the last step", () => {
  assert.equal(previousTimestep(STABLE_DIFFUSION_SCHEDULE, 20, 951), 901);
  assert.deepEqual(timestepPair(STABLE_DIFFUSION_SCHEDULE, 20, 19), { timestep: 1, prevTimestep: -49 });
  assert.deepEqual(timestepPair(STABLE_DIFFUSION_SCHEDULE, 50, 0), { timestep: 981, prevTimestep: 961 });
});

Deno.test("trailing and linspace spacings follow diffusers' numpy formulas", () => {
  const trailing = { ...STABLE_DIFFUSION_SCHEDULE, timestepSpacing: "trailing" as const };
  assert.deepEqual(inferenceTimesteps(trailing, 4), [999, 749, 499, 249]);
  const linspace = { ...STABLE_DIFFUSION_SCHEDULE, timestepSpacing: "linspace" as const };
  // np.linspace(0, 999, 4).round()[::-1] = [999, 666, 333, 0]
  assert.deepEqual(inferenceTimesteps(linspace, 4), [999, 666, 333, 0]);
  // 999 / 2 = 499.5 rounds half to even: 500.
  assert.deepEqual(inferenceTimesteps(linspace, 3), [999, 500, 0]);
});

Deno.test("bad step counts and indices name their field", () => {
  for (const t of [0, 1.5, 1001]) {
    assert.throws(
      () => inferenceTimesteps(STABLE_DIFFUSION_SCHEDULE, t),
      (e: unknown) => e instanceof InvalidArgumentError && e.field === "num_inference_steps",
    );
  }
  for (const i of [-1, 20, 0.5]) {
    assert.throws(
      () => timestepPair(STABLE_DIFFUSION_SCHEDULE, 20, i),
      (e: unknown) => e instanceof InvalidArgumentError && e.field === "step_index",
    );
  }
});

Deno.test({
  name: "RDPO_SPEC 1: inference timesteps match diffusers' set_timesteps (golden/ddim)",
  ignore: !hasFixtures(GOLDEN),
  fn: async () => {
    const { config, numInferenceSteps } = await readGoldenDdimConfig(GOLDEN);
    const { timesteps } = await readGoldenDdimIo(GOLDEN);
    if (numInferenceSteps !== undefined) assert.equal(timesteps.length, numInferenceSteps);
    assert.deepEqual(inferenceTimesteps(parseScheduleConfig(config), timesteps.length), timesteps);
  },
});
