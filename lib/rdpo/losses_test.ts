import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { InvalidArgumentError } from "../errors.ts";
import { logRatio } from "./log_prob.ts";
import {
  batchLoss,
  clampLogRatio,
  defaultLossConfig,
  diffusionDpoLoss,
  dpoLoss,
  type LossConfig,
  negLogSigmoid,
  preferenceLoss,
  rdpoLoss,
  validateLossConfig,
} from "./losses.ts";
import { stepMean } from "./sampler_step.ts";
import { buildNoiseSchedule, STABLE_DIFFUSION_SCHEDULE } from "./schedule.ts";
import { type StepCoefficients, stepCoefficientsAt } from "./step_coefficients.ts";
import { take, testBackends, testValues, useBackend } from "./test_support.ts";

const LOG2 = Math.log(2);
const schedule = buildNoiseSchedule(STABLE_DIFFUSION_SCHEDULE);
const rdpoCfg: LossConfig = { kind: "rdpo", beta: 0.1, lambda: 100, ratioClamp: 0 };
const dpoCfg: LossConfig = { kind: "dpo", beta: 0.1, lambda: 0, ratioClamp: 0 };

/** float64 reference of -log sigmoid(x). */
const nls = (x: number) => Math.max(-x, 0) + Math.log1p(Math.exp(-Math.abs(x)));

async function lossOf(cfg: LossConfig, hw: number[], hl: number[]): Promise<Float64Array> {
  return await take(preferenceLoss(tf.tensor1d(hw), tf.tensor1d(hl), cfg));
}

/** dL/dh_w and dL/dh_l of the per-pair losses (summed), by tf.grads. */
async function gradsOf(cfg: LossConfig, hw: number[], hl: number[]): Promise<[Float64Array, Float64Array]> {
  const [gw, gl] = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
    tf.sum(preferenceLoss(a as tf.Tensor1D, b as tf.Tensor1D, cfg))
  )([tf.tensor1d(hw), tf.tensor1d(hl)]);
  return [await take(gw), await take(gl)];
}

Deno.test("RDPO_SPEC 5: dpo, rdpo and diffusion_dpo give L = log 2 at h_w = h_l = 0", async () => {
  await useBackend();
  for (const cfg of [dpoCfg, rdpoCfg, { ...dpoCfg, ratioClamp: 0.1 }]) {
    const l = await lossOf(cfg, [0, 0], [0, 0]);
    assert.ok(Math.abs(l[0] - LOG2) < 1e-6 && Math.abs(l[1] - LOG2) < 1e-6, `${cfg.kind}: ${l}`);
  }
  const eps = tf.tensor(testValues(8, 1), [2, 4]);
  const pred = tf.tensor(testValues(8, 2), [2, 4]);
  const d = diffusionDpoLoss(
    { noise: eps, policyWinner: pred, referenceWinner: pred, policyLoser: pred, referenceLoser: pred },
    5000,
  );
  for (const v of await take(d.loss)) assert.ok(Math.abs(v - LOG2) < 1e-6);
});

Deno.test("RDPO_SPEC 5: dpo loss is -log sigmoid(beta (h_w - h_l)) and finite for extreme arguments", async () => {
  await useBackend();
  const hw = [0.3, -2, 5e4, -5e4];
  const hl = [-0.1, 1, -5e4, 5e4];
  const l = await lossOf(dpoCfg, hw, hl);
  for (let i = 0; i < hw.length; i++) {
    const expected = nls(0.1 * (hw[i] - hl[i]));
    assert.ok(Number.isFinite(l[i]), `pair ${i} not finite`);
    assert.ok(Math.abs(l[i] - expected) <= 1e-6 * Math.max(1, expected), `pair ${i}: ${l[i]} vs ${expected}`);
  }
  const n = await take(negLogSigmoid(tf.tensor1d([-1e30, 0, 1e30, 80, -80])));
  assert.ok(n.every((v) => Number.isFinite(v)), `not finite: ${n}`);
});

Deno.test("RDPO_SPEC 5: rdpo loss is -log sigmoid(beta (h_w - h_l) - lambda max(0, h_l))", async () => {
  await useBackend();
  const hw = [0.02, -0.01, 0.3, 0];
  const hl = [0.01, 0.005, -0.2, 0.001];
  const l = await lossOf(rdpoCfg, hw, hl);
  for (let i = 0; i < hw.length; i++) {
    const expected = nls(0.1 * (hw[i] - hl[i]) - 100 * Math.max(0, hl[i]));
    assert.ok(Math.abs(l[i] - expected) <= 1e-6 * Math.max(1, expected), `pair ${i}: ${l[i]} vs ${expected}`);
  }
});

Deno.test("RDPO_SPEC 5: rdpo penalty is exactly 0 when h_l <= 0 (rdpo equals dpo there)", async () => {
  await useBackend();
  const hw = [0.5, -0.3, 0, 2, -1e-8];
  const hl = [0, -0.2, -1e-12, -3, -1e-8];
  const r = await lossOf({ ...rdpoCfg, lambda: 1e4 }, hw, hl);
  const d = await lossOf(dpoCfg, hw, hl);
  assert.deepEqual(Array.from(r), Array.from(d));
  const [, glR] = await gradsOf({ ...rdpoCfg, lambda: 1e4 }, hw, hl);
  const [, glD] = await gradsOf(dpoCfg, hw, hl);
  // At h_l = 0 exactly, relu's derivative is taken as 0 (tfjs), so the gradient is dpo's too.
  assert.deepEqual(Array.from(glR), Array.from(glD));
});

Deno.test("RDPO_SPEC 5: rdpo dL/dh_l > 0 whenever h_l > 0 (pushes the loser's likelihood down)", async () => {
  await useBackend();
  const hw = [0, 0.5, -0.5, 3, 0, 10];
  const hl = [1e-4, 0.01, 0.2, 0.5, 2, 0.001];
  for (const lambda of [0, 10, 100, 1e4]) {
    const [, gl] = await gradsOf({ ...rdpoCfg, lambda }, hw, hl);
    for (let i = 0; i < hw.length; i++) {
      assert.ok(gl[i] > 0, `lambda ${lambda} pair ${i}: dL/dh_l = ${gl[i]}`);
    }
    // Analytic value: sigmoid(-z) (beta + lambda), z = beta (h_w - h_l) - lambda h_l.
    for (let i = 0; i < hw.length; i++) {
      const z = 0.1 * (hw[i] - hl[i]) - lambda * hl[i];
      const expected = (1 / (1 + Math.exp(z))) * (0.1 + lambda);
      assert.ok(Math.abs(gl[i] - expected) <= 1e-4 * expected + 1e-9, `lambda ${lambda} pair ${i}`);
    }
  }
});

Deno.test("RDPO_SPEC 5: dL/dh_w < 0 always, for dpo and rdpo", async () => {
  await useBackend();
  const hw = [-1, 0, 0.2, 1, 5];
  const hl = [2, 0, -0.3, 0.5, 1];
  for (const cfg of [dpoCfg, rdpoCfg, { ...rdpoCfg, lambda: 0 }]) {
    const [gw] = await gradsOf(cfg, hw, hl);
    for (let i = 0; i < hw.length; i++) assert.ok(gw[i] < 0, `${cfg.kind} pair ${i}: ${gw[i]}`);
  }
});

Deno.test("RDPO_SPEC 5: the paper's literal Eq. 9 sign would give dL/dh_l < 0 from the penalty (why it is corrected)", () => {
  // Literal: L = -log sigmoid(delta - lambda Psi), Psi = min(0, log pi_ref/pi_theta(x_l)) = min(0, -h_l).
  const literal = (hw: number, hl: number) => nls(0.1 * (hw - hl) - 100 * Math.min(0, -hl));
  const corrected = (hw: number, hl: number) => nls(0.1 * (hw - hl) - 100 * Math.max(0, hl));
  const e = 1e-6;
  const dLiteral = (literal(0, 0.01 + e) - literal(0, 0.01 - e)) / (2 * e);
  const dCorrected = (corrected(0, 0.01 + e) - corrected(0, 0.01 - e)) / (2 * e);
  assert.ok(dLiteral < 0, `literal dL/dh_l = ${dLiteral}`);
  assert.ok(dCorrected > 0, `corrected dL/dh_l = ${dCorrected}`);
});

Deno.test("RDPO_SPEC 5: dpo ratio clamp clips exp(h) to [1 - e, 1 + e] like D3PO, with zero gradient when clipped", async () => {
  await useBackend();
  const e = 0.1;
  const cfg = { ...dpoCfg, ratioClamp: e };
  const hw = [0.5, 0.05, -0.5, 0.02];
  const hl = [-0.5, 0.01, 0.03, 0.5];
  const l = await lossOf(cfg, hw, hl);
  const clampRatio = (h: number) => Math.log(Math.min(Math.max(Math.exp(h), 1 - e), 1 + e));
  for (let i = 0; i < hw.length; i++) {
    const expected = nls(0.1 * clampRatio(hw[i]) - 0.1 * clampRatio(hl[i]));
    assert.ok(Math.abs(l[i] - expected) < 1e-6, `pair ${i}: ${l[i]} vs ${expected}`);
  }
  const [gw, gl] = await gradsOf(cfg, hw, hl);
  assert.equal(gw[0], 0); // h_w = 0.5 > log(1.1): clipped
  assert.equal(gl[0], 0); // h_l = -0.5 < log(0.9): clipped
  assert.ok(gw[1] < 0 && gl[1] > 0); // inside the range: unclipped gradient
  // e >= 1 leaves no lower bound.
  const low = await take(clampLogRatio(tf.tensor1d([-10, 10]), 1.5));
  assert.ok(Math.abs(low[0] + 10) < 1e-6 && Math.abs(low[1] - Math.log(2.5)) < 1e-6);
});

Deno.test("RDPO_SPEC 5: diffusion_dpo is -log sigmoid(-beta_d/2 ((e_w^theta - e_w^ref) - (e_l^theta - e_l^ref)))", async () => {
  await useBackend();
  const shape = [2, 3, 2];
  const vals = (seed: number) => testValues(12, seed);
  const [n, pw, rw, pl, rl] = [vals(3), vals(4), vals(5), vals(6), vals(7)];
  const beta = 50;
  const res = diffusionDpoLoss({
    noise: tf.tensor(n, shape),
    policyWinner: tf.tensor(pw, shape),
    referenceWinner: tf.tensor(rw, shape),
    policyLoser: tf.tensor(pl, shape),
    referenceLoser: tf.tensor(rl, shape),
  }, beta);
  const loss = await take(res.loss);
  const hW = await take(res.logRatioWinner);
  const mse = (p: Float32Array, b: number) => {
    let s = 0;
    for (let i = b * 6; i < (b + 1) * 6; i++) s += (n[i] - p[i]) ** 2;
    return s / 6;
  };
  for (let b = 0; b < 2; b++) {
    const inside = (-beta / 2) * ((mse(pw, b) - mse(rw, b)) - (mse(pl, b) - mse(rl, b)));
    assert.ok(Math.abs(loss[b] - nls(inside)) < 1e-5 * Math.max(1, nls(inside)), `pair ${b}`);
    assert.ok(Math.abs(hW[b] + (mse(pw, b) - mse(rw, b)) / 2) < 1e-6);
  }
});

Deno.test("loss configs: bad values and misplaced options name the field", () => {
  const field = (f: string) => (e: unknown) => e instanceof InvalidArgumentError && e.field === f;
  assert.throws(() => validateLossConfig({ ...dpoCfg, beta: 0 }), field("loss.beta"));
  assert.throws(() => validateLossConfig({ ...rdpoCfg, lambda: -1 }), field("loss.lambda"));
  assert.throws(() => validateLossConfig({ ...dpoCfg, lambda: 100 }), field("loss.lambda"));
  assert.throws(() => validateLossConfig({ ...rdpoCfg, ratioClamp: 0.1 }), field("loss.ratio_clamp"));
  assert.throws(() => validateLossConfig({ ...dpoCfg, kind: "ipo" as "dpo" }), field("loss.kind"));
  assert.throws(() => dpoLoss(tf.tensor1d([]), tf.tensor1d([]), 0.1), field("log_ratio_winner"));
  assert.throws(() => rdpoLoss(tf.tensor1d([1]), tf.tensor1d([1, 2]), 0.1, 1), field("log_ratio_loser"));
  assert.throws(() => batchLoss(tf.tensor1d([])), field("pairs"));
  for (const kind of ["dpo", "rdpo", "diffusion_dpo"] as const) validateLossConfig(defaultLossConfig(kind));
  assert.equal(defaultLossConfig("rdpo").lambda, 100);
  assert.equal(defaultLossConfig("rdpo").beta, 0.1);
});

// ---- Finite-difference gradient checks through the log-ratio, w.r.t. the model output eps_theta ----

const SHAPE = [2, 2, 3, 3];
const N = 36;
const D = 18;

/** float64 chain: eps_theta -> mu_theta (DDIM) -> h (spec section 2) for each item. */
function refLogRatios(
  c: StepCoefficients,
  xt: Float32Array,
  x: Float32Array,
  muRef: Float64Array,
  eps: Float64Array,
) {
  const h: number[] = [];
  for (let b = 0; b < 2; b++) {
    let r = 0;
    let t = 0;
    for (let i = b * D; i < (b + 1) * D; i++) {
      const x0 = (xt[i] - Math.sqrt(1 - c.alphaProdT) * eps[i]) / Math.sqrt(c.alphaProdT);
      const mu = c.meanX0 * x0 + c.meanEps * eps[i];
      r += (x[i] - muRef[i]) ** 2;
      t += (x[i] - mu) ** 2;
    }
    h.push((r - t) / (2 * c.sigma * c.sigma * D));
  }
  return h;
}

function refLoss(cfg: LossConfig, hw: number[], hl: number[]): number {
  let s = 0;
  for (let i = 0; i < hw.length; i++) {
    const inside = cfg.kind === "rdpo"
      ? cfg.beta * (hw[i] - hl[i]) - cfg.lambda * Math.max(0, hl[i])
      : cfg.beta * (hw[i] - hl[i]);
    s += nls(inside);
  }
  return s / hw.length;
}

interface FdSetup {
  c: StepCoefficients;
  xt: Float32Array;
  xW: Float32Array;
  xL: Float32Array;
  epsRef: Float32Array;
  epsW: Float32Array;
  epsL: Float32Array;
  muRef: Float64Array;
}

function fdSetup(): FdSetup {
  const c = stepCoefficientsAt(schedule, { sampler: "ddim", numInferenceSteps: 20, eta: 1 }, 6);
  const xt = testValues(N, 51);
  const epsRef = testValues(N, 52);
  const epsW = Float32Array.from(epsRef, (v, i) => v + testValues(N, 53, 0.3)[i]);
  const epsL = Float32Array.from(epsRef, (v, i) => v + testValues(N, 54, 0.3)[i]);
  const muRef = new Float64Array(N);
  for (let i = 0; i < N; i++) {
    const x0 = (xt[i] - Math.sqrt(1 - c.alphaProdT) * epsRef[i]) / Math.sqrt(c.alphaProdT);
    muRef[i] = c.meanX0 * x0 + c.meanEps * epsRef[i];
  }
  // Shared parent x_t. The winner is sampled around the reference mean and the loser around the
  // policy's mean, so h_l > 0 (the rdpo penalty is active) and h_w < 0.
  const muL = Float64Array.from(epsL, (e, i) => {
    const x0 = (xt[i] - Math.sqrt(1 - c.alphaProdT) * e) / Math.sqrt(c.alphaProdT);
    return c.meanX0 * x0 + c.meanEps * e;
  });
  const xW = Float32Array.from(muRef, (m, i) => m + c.sigma * testValues(N, 55)[i]);
  const xL = Float32Array.from(muL, (m, i) => m + c.sigma * testValues(N, 56)[i]);
  return { c, xt, xW, xL, epsRef, epsW, epsL, muRef };
}

for (const backend of testBackends()) {
  for (const cfg of [dpoCfg, rdpoCfg, { ...rdpoCfg, beta: 1, lambda: 10 }]) {
    Deno.test(
      `RDPO_SPEC 5: ${cfg.kind} (beta ${cfg.beta}, lambda ${cfg.lambda}) gradient w.r.t. eps_theta matches central differences [${backend}]`,
      async () => {
        await useBackend(backend);
        const s = fdSetup();
        const hW0 = refLogRatios(s.c, s.xt, s.xW, s.muRef, Float64Array.from(s.epsW));
        const hL0 = refLogRatios(s.c, s.xt, s.xL, s.muRef, Float64Array.from(s.epsL));
        if (cfg.kind === "rdpo") {
          assert.ok(hL0.some((h) => h > 0), `penalty branch not exercised: h_l = ${hL0}`);
        }
        const xt = tf.tensor(s.xt, SHAPE);
        const xW = tf.tensor(s.xW, SHAPE);
        const xL = tf.tensor(s.xL, SHAPE);
        const muRef = stepMean(xt, tf.tensor(s.epsRef, SHAPE), s.c).mean;
        const lossFn = (eW: tf.Tensor, eL: tf.Tensor) => {
          const hW = logRatio(xW, stepMean(xt, eW, s.c).mean, muRef, s.c);
          const hL = logRatio(xL, stepMean(xt, eL, s.c).mean, muRef, s.c);
          return batchLoss(preferenceLoss(hW, hL, cfg));
        };
        const [gW, gL] = tf.grads(lossFn)([tf.tensor(s.epsW, SHAPE), tf.tensor(s.epsL, SHAPE)]);
        const grads = [await take(gW), await take(gL)];
        const step = 1e-6;
        for (const [which, g] of [[0, grads[0]], [1, grads[1]]] as const) {
          const base = Float64Array.from(which === 0 ? s.epsW : s.epsL);
          let maxG = 0;
          const fd = new Float64Array(N);
          for (let i = 0; i < N; i++) {
            const plus = Float64Array.from(base);
            const minus = Float64Array.from(base);
            plus[i] += step;
            minus[i] -= step;
            const f = (e: Float64Array) => {
              const hw = which === 0 ? refLogRatios(s.c, s.xt, s.xW, s.muRef, e) : hW0;
              const hl = which === 1 ? refLogRatios(s.c, s.xt, s.xL, s.muRef, e) : hL0;
              return refLoss(cfg, hw, hl);
            };
            fd[i] = (f(plus) - f(minus)) / (2 * step);
            maxG = Math.max(maxG, Math.abs(fd[i]));
          }
          assert.ok(maxG > 0, "zero gradient: the check would be vacuous");
          for (let i = 0; i < N; i++) {
            assert.ok(
              Math.abs(g[i] - fd[i]) <= 2e-3 * maxG,
              `${which === 0 ? "winner" : "loser"} [${i}]: tf.grad ${g[i]} vs central difference ${fd[i]}`,
            );
          }
        }
      },
    );
  }

  Deno.test(`RDPO_SPEC 5: diffusion_dpo gradient w.r.t. the policy's eps predictions matches central differences [${backend}]`, async () => {
    await useBackend(backend);
    const shape = [2, 9];
    const n = testValues(18, 61);
    const rw = testValues(18, 62);
    const rl = testValues(18, 63);
    const pw = Float32Array.from(rw, (v, i) => v + testValues(18, 64, 0.05)[i]);
    const pl = Float32Array.from(rl, (v, i) => v + testValues(18, 65, 0.05)[i]);
    const beta = 500;
    const lossFn = (a: tf.Tensor, b: tf.Tensor) =>
      batchLoss(
        diffusionDpoLoss({
          noise: tf.tensor(n, shape),
          policyWinner: a,
          referenceWinner: tf.tensor(rw, shape),
          policyLoser: b,
          referenceLoser: tf.tensor(rl, shape),
        }, beta).loss,
      );
    const [gW, gL] = tf.grads(lossFn)([tf.tensor(pw, shape), tf.tensor(pl, shape)]);
    const grads = [await take(gW), await take(gL)];
    const mse = (p: Float64Array | Float32Array, b: number) => {
      let s = 0;
      for (let i = b * 9; i < (b + 1) * 9; i++) s += (n[i] - p[i]) ** 2;
      return s / 9;
    };
    const ref = (w: Float64Array, l: Float64Array) =>
      (nls((-beta / 2) * ((mse(w, 0) - mse(rw, 0)) - (mse(l, 0) - mse(rl, 0)))) +
        nls((-beta / 2) * ((mse(w, 1) - mse(rw, 1)) - (mse(l, 1) - mse(rl, 1))))) / 2;
    const step = 1e-6;
    for (const which of [0, 1]) {
      const fd = new Float64Array(18);
      for (let i = 0; i < 18; i++) {
        const w = Float64Array.from(pw);
        const l = Float64Array.from(pl);
        const target = which === 0 ? w : l;
        target[i] += step;
        const up = ref(w, l);
        target[i] -= 2 * step;
        fd[i] = (up - ref(w, l)) / (2 * step);
      }
      const maxG = Math.max(...fd.map(Math.abs));
      assert.ok(maxG > 0);
      for (let i = 0; i < 18; i++) {
        assert.ok(
          Math.abs(grads[which][i] - fd[i]) <= 2e-3 * maxG,
          `${which} [${i}]: ${grads[which][i]} vs ${fd[i]}`,
        );
      }
    }
  });
}
