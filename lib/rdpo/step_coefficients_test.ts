import assert from "node:assert/strict";
import { InvalidArgumentError } from "../errors.ts";
import { buildNoiseSchedule, STABLE_DIFFUSION_SCHEDULE } from "./schedule.ts";
import {
  requireStochasticStep,
  type SamplerConfig,
  stepCoefficients,
  stepCoefficientsAt,
  validateSamplerConfig,
} from "./step_coefficients.ts";

const schedule = buildNoiseSchedule(STABLE_DIFFUSION_SCHEDULE);
const ddim1: SamplerConfig = { sampler: "ddim", numInferenceSteps: 20, eta: 1 };
const isField = (field: string) => (e: unknown) => e instanceof InvalidArgumentError && e.field === field;

Deno.test("RDPO_SPEC 1: DDIM sigma_t = eta sqrt((1 - abar_prev) / (1 - abar_t)) sqrt(1 - abar_t / abar_prev)", () => {
  for (const eta of [1, 0.5, 0.25]) {
    for (let i = 0; i < 20; i++) {
      const c = stepCoefficientsAt(schedule, { ...ddim1, eta }, i);
      const a = schedule.alphasCumprod[c.timestep];
      const ap = c.prevTimestep >= 0 ? schedule.alphasCumprod[c.prevTimestep] : schedule.alphasCumprod[0];
      assert.equal(c.alphaProdT, a);
      assert.equal(c.alphaProdTPrev, ap);
      const sigma = eta * Math.sqrt((1 - ap) / (1 - a)) * Math.sqrt(1 - a / ap);
      assert.ok(Math.abs(c.sigma - sigma) <= 1e-15 * Math.max(1, sigma), `eta=${eta} i=${i}`);
      assert.equal(c.meanX0, Math.sqrt(ap));
      assert.ok(Math.abs(c.meanEps - Math.sqrt(1 - ap - sigma * sigma)) < 1e-12);
      assert.equal(c.meanSample, 0);
    }
  }
});

Deno.test("RDPO_SPEC 1: abar_prev = abar[0] when t_prev < 0 (set_alpha_to_one false), 1 when true", () => {
  const last = stepCoefficientsAt(schedule, ddim1, 19);
  assert.equal(last.prevTimestep, -49);
  assert.equal(last.alphaProdTPrev, schedule.alphasCumprod[0]);
  assert.ok(last.sigma > 0);
  const one = buildNoiseSchedule({ ...STABLE_DIFFUSION_SCHEDULE, setAlphaToOne: true });
  const lastOne = stepCoefficientsAt(one, ddim1, 19);
  assert.equal(lastOne.alphaProdTPrev, 1);
  assert.equal(lastOne.sigma, 0);
  assert.throws(() => requireStochasticStep(lastOne), isField("step_index"));
});

Deno.test("RDPO_SPEC 1: eta = 0 with log-probabilities is a configuration error naming eta", () => {
  const c = stepCoefficientsAt(schedule, { ...ddim1, eta: 0 }, 3);
  assert.equal(c.sigma, 0);
  assert.throws(() => requireStochasticStep(c), isField("eta"));
  assert.throws(
    () => validateSamplerConfig({ ...ddim1, eta: 0 }, schedule, { forLogProbs: true }),
    isField("eta"),
  );
  // Sampling with eta = 0 (deterministic DDIM) stays valid.
  validateSamplerConfig({ ...ddim1, eta: 0 }, schedule);
  assert.throws(
    () => validateSamplerConfig({ ...ddim1, eta: 0 }, schedule, { forLogProbs: true, field: "step" }),
    isField("step.eta"),
  );
});

Deno.test("sampler configs with a bad eta, sampler or step count name the field", () => {
  assert.throws(() => stepCoefficientsAt(schedule, { ...ddim1, eta: 1.5 }, 0), isField("eta"));
  assert.throws(() => stepCoefficientsAt(schedule, { ...ddim1, eta: NaN }, 0), isField("eta"));
  assert.throws(
    () => stepCoefficientsAt(schedule, { ...ddim1, sampler: "euler" as unknown as "ddim" }, 0),
    isField("sampler"),
  );
  assert.throws(
    () => stepCoefficientsAt(schedule, { ...ddim1, numInferenceSteps: 0 }, 0),
    isField("num_inference_steps"),
  );
  assert.throws(() => stepCoefficients(schedule, ddim1, 1000), isField("timestep"));
});

Deno.test("RDPO_SPEC 1: the DDPM step has the same Gaussian as DDIM with eta = 1 except at the last step", () => {
  const ddpm: SamplerConfig = { sampler: "ddpm", numInferenceSteps: 20, eta: 0 };
  const xt = 0.7;
  const eps = -1.3;
  for (let i = 0; i < 19; i++) {
    const p = stepCoefficientsAt(schedule, ddpm, i);
    const d = stepCoefficientsAt(schedule, ddim1, i);
    assert.ok(Math.abs(p.sigma - d.sigma) < 1e-12, `sigma at ${i}`);
    const x0 = (xt - Math.sqrt(1 - p.alphaProdT) * eps) / Math.sqrt(p.alphaProdT);
    const muDdpm = p.meanX0 * x0 + p.meanEps * eps + p.meanSample * xt;
    const muDdim = d.meanX0 * x0 + d.meanEps * eps + d.meanSample * xt;
    assert.ok(Math.abs(muDdpm - muDdim) < 1e-9, `mean at ${i}: ${muDdpm} vs ${muDdim}`);
  }
  // Last step: DDPM's abar_prev is 1 (diffusers' `one`), so it is deterministic: mu = x0hat.
  const last = stepCoefficientsAt(schedule, ddpm, 19);
  assert.equal(last.alphaProdTPrev, 1);
  assert.equal(last.sigma, 0);
  assert.equal(last.meanX0, 1);
  assert.equal(last.meanSample, 0);
  assert.throws(() => requireStochasticStep(last), isField("step_index"));
});
