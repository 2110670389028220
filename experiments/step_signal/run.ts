/**
 * How well does a step's reward estimate predict the reward of the image the trajectory ends in?
 * (RDPO_SPEC.md sections 3-4: a shared-parent pair at step i is ranked by Q(x_prev) = r(x0hat(x_prev));
 * the pair is only as good as that ranking agrees with the rewards of the final images.)
 *
 * For every prompt and trajectory, and every inference step i: from the shared parent x_t, K candidates
 * (the trainer's own sampling call), each scored by Q; then every candidate is continued to x_0 with
 * fixed noise (the same noise for all K, so only the candidate differs) and its final image is scored by
 * the trained reward and by the held-out evaluator. Per step it prints:
 *   - Spearman rank correlation of Q(x_prev^k) with the final reward (mean over groups),
 *   - pair agreement: how often the final image of the best-by-Q candidate beats that of the worst
 *     (the share of trained pairs whose label the final image confirms), for both classifiers,
 *   - the mean final-reward gap winner - loser.
 * The policy is the base model (no adapter): this measures the signal a run starts from.
 *
 *   deno run -A experiments/step_signal/run.ts [--model-dir models/tiny] [--reward prompt_fidelity]
 *       [--evaluator attribute_evaluator] [--candidates 8] [--trajectories 2] [--steps 10] [--guidance 3]
 *       [--seed 1] [--out experiments/step_signal/results.json]
 */
import { join } from "node:path";
import { type CommandSpec, runCommand } from "../../lib/cli/command.ts";
import type { FlagSpecs, FlagValues } from "../../lib/rpc/flags.ts";
import { ServiceProcess } from "../../lib/process/service_process.ts";
import { createClient } from "../../lib/rpc/client.ts";
import { PolicyService, StepConfigSchema } from "../../gen/rdpo/v1/policy_pb.ts";
import { RewardService } from "../../gen/rdpo/v1/reward_pb.ts";
import type { Image } from "../../gen/rdpo/v1/tensor_pb.ts";
import { create } from "@bufbuild/protobuf";
import { decodeFloat32, encodeTensor } from "../../lib/tensor/codec.ts";
import { initialLatentsNoise } from "../../lib/rdpo/rng.ts";
import { repoRoot } from "../../lib/testing/fixtures.ts";
import { loadPromptFile, splitPrompts } from "../../services/trainer/prompts.ts";

export const STEP_SIGNAL_FLAGS = {
  modelDir: { type: "string", description: "model folder (default models/tiny)" },
  reward: {
    type: "string",
    default: "prompt_fidelity",
    description: "the trained reward (a bundle under models/)",
  },
  evaluator: { type: "string", default: "attribute_evaluator", description: "the held-out evaluator bundle" },
  candidates: { type: "int", default: 8, min: 2, description: "K candidates per shared parent" },
  trajectories: { type: "int", default: 2, min: 1, description: "trajectories (x_T draws) per prompt" },
  steps: { type: "int", default: 10, min: 2, description: "inference steps T" },
  guidance: { type: "number", default: 3, min: 1, description: "classifier-free guidance scale" },
  seed: { type: "int", default: 1, min: 0, description: "noise seed" },
  out: { type: "string", description: "also write the per-step table as JSON here" },
} as const satisfies FlagSpecs;

/** Spearman's rank correlation (average ranks for ties); NaN when either side is constant. */
export function spearman(a: readonly number[], b: readonly number[]): number {
  const rank = (v: readonly number[]) => {
    const order = v.map((x, i) => [x, i] as const).sort((p, q) => p[0] - q[0]);
    const r = new Array<number>(v.length);
    for (let i = 0; i < order.length;) {
      let j = i;
      while (j + 1 < order.length && order[j + 1][0] === order[i][0]) j++;
      for (let k = i; k <= j; k++) r[order[k][1]] = (i + j) / 2;
      i = j + 1;
    }
    return r;
  };
  const ra = rank(a), rb = rank(b);
  const n = a.length;
  const ma = ra.reduce((s, x) => s + x, 0) / n, mb = rb.reduce((s, x) => s + x, 0) / n;
  let num = 0, da = 0, db = 0;
  for (let i = 0; i < n; i++) {
    num += (ra[i] - ma) * (rb[i] - mb);
    da += (ra[i] - ma) ** 2;
    db += (rb[i] - mb) ** 2;
  }
  return num / Math.sqrt(da * db);
}

export interface StepSignalRow {
  step: number;
  groups: number;
  spearman: number;
  agreementReward: number;
  agreementEvaluator: number;
  gapReward: number;
  gapEvaluator: number;
  qGap: number;
}

async function stepSignal(values: FlagValues<typeof STEP_SIGNAL_FLAGS>): Promise<void> {
  const modelDir = values.modelDir ?? join(repoRoot, "models", "tiny");
  const modelRoot = join(repoRoot, "models");
  const bundles = [values.reward, values.evaluator];
  const reward = new ServiceProcess("services/reward/main.ts", [
    "--model-root",
    modelRoot,
    "--preload",
    bundles.map((b) => `${b}@v1=${b}`).join(","),
  ]);
  const policyProc = new ServiceProcess("services/policy/main.ts", [
    "--model-dir",
    modelDir,
    "--lora-rank",
    "4",
  ]);
  await Promise.all([reward.start(0, 300_000), policyProc.start(0, 300_000)]);
  const policy = createClient(PolicyService, policyProc.address);
  const rewards = createClient(RewardService, reward.address);
  const started = performance.now();
  try {
    const info = await policy.getInfo({});
    const [c, h, w] = info.latentShape.map(Number);
    const d = c * h * w;
    const T = values.steps, K = values.candidates;
    const step = create(StepConfigSchema, { numInferenceSteps: T, eta: 1, guidanceScale: values.guidance });
    const all = await loadPromptFile(join(repoRoot, "tools", "shapes", "demo_prompts.txt"));
    // The demo's training prompts (its split: eval_fraction 0.25, shuffle seed 0).
    const trainPrompts = splitPrompts(all, 0.25, 0).train;
    // The policy takes at most 64 samples per request: prompts go in chunks of floor(64 / K).
    const perCall = Math.max(1, Math.floor(64 / K));
    const score = async (name: string, images: Image[], ps: string[]) =>
      (await rewards.score({ scorer: name, images, prompts: ps })).scores;
    const rows: StepSignalRow[] = [];
    for (let i = 0; i < T - 1; i++) {
      const acc = { groups: 0, rho: 0, agreeR: 0, agreeE: 0, gapR: 0, gapE: 0, qGap: 0 };
      for (let chunk = 0; chunk * perCall < trainPrompts.length * values.trajectories; chunk++) {
        const first = chunk * perCall;
        const prompts = Array.from(
          { length: Math.min(perCall, trainPrompts.length * values.trajectories - first) },
          (_, j) => trainPrompts[(first + j) % trainPrompts.length],
        );
        const seed = BigInt(values.seed);
        const base = BigInt(1000 * chunk);
        const b = prompts.length;
        const xT = initialLatentsNoise({ seed, stream: base }, b, d);
        // Step i's K candidates from x_t (steps before i with one candidate, as the trainer's lead steps).
        const res = await policy.sampleCandidates({
          conditioning: { prompts },
          latents: encodeTensor(xT, [b, c, h, w]),
          stepIndex: 0,
          leadSteps: i,
          leadNoise: i ? { seed, stream: base } : undefined,
          step,
          numCandidates: K,
          noise: { seed, stream: base + 100n },
          predictCandidateNoise: true,
          decodeCandidates: true,
        });
        const candPrompts = prompts.flatMap((p) => new Array(K).fill(p));
        const q = await score(values.reward, res.candidateImages, candPrompts);
        // Continue every candidate to x_0 (candidate k of prompt j is item j*K + k) in one call: steps
        // i+1 .. T-2 as lead steps, the last as the call's own step. Every continuation has its own noise,
        // as a trajectory continued from that candidate would: the agreement is with one draw of the final
        // reward, not with its expectation.
        const n = b * K;
        const leadSteps = T - 2 - i;
        const rest = await policy.sampleCandidates({
          conditioning: { prompts: candPrompts },
          latents: encodeTensor(decodeFloat32("candidates", res.candidates).data, [n, c, h, w]),
          stepIndex: i + 1,
          leadSteps,
          leadNoise: leadSteps ? { seed, stream: base + 500n } : undefined,
          step,
          numCandidates: 1,
          noise: { seed, stream: base + 500n },
          parentNoisePred: encodeTensor(decodeFloat32("candidate_noise_pred", res.candidateNoisePred).data, [
            n,
            c,
            h,
            w,
          ]),
          decodeCandidates: true,
        });
        const images: Image[] = rest.candidateImages;
        const finalR = await score(values.reward, images, candPrompts);
        const finalE = await score(values.evaluator, images, candPrompts);
        for (let j = 0; j < b; j++) {
          const qs = q.slice(j * K, (j + 1) * K);
          const fr = finalR.slice(j * K, (j + 1) * K);
          const fe = finalE.slice(j * K, (j + 1) * K);
          const win = qs.indexOf(Math.max(...qs)), lose = qs.indexOf(Math.min(...qs));
          acc.groups++;
          const rho = spearman(qs, fr);
          if (Number.isFinite(rho)) acc.rho += rho;
          acc.agreeR += fr[win] > fr[lose] ? 1 : fr[win] === fr[lose] ? 0.5 : 0;
          acc.agreeE += fe[win] > fe[lose] ? 1 : fe[win] === fe[lose] ? 0.5 : 0;
          acc.gapR += fr[win] - fr[lose];
          acc.gapE += fe[win] - fe[lose];
          acc.qGap += qs[win] - qs[lose];
        }
      }
      const g = acc.groups;
      const row: StepSignalRow = {
        step: i,
        groups: g,
        spearman: acc.rho / g,
        agreementReward: acc.agreeR / g,
        agreementEvaluator: acc.agreeE / g,
        gapReward: acc.gapR / g,
        gapEvaluator: acc.gapE / g,
        qGap: acc.qGap / g,
      };
      rows.push(row);
      console.log(
        `step ${i}: spearman ${row.spearman.toFixed(3)}, agreement ${row.agreementReward.toFixed(2)} / ${
          row.agreementEvaluator.toFixed(2)
        }, final gap ${row.gapReward.toFixed(2)} / ${row.gapEvaluator.toFixed(2)}, Q gap ${
          row.qGap.toFixed(2)
        } (${((performance.now() - started) / 1000).toFixed(0)} s)`,
      );
    }
    console.log(
      `\n| step | groups | Spearman(Q, final) | pair agreement, reward | pair agreement, evaluator | final gap, reward | final gap, evaluator | Q gap |`,
    );
    console.log(`|---:|---:|---:|---:|---:|---:|---:|---:|`);
    for (const r of rows) {
      console.log(
        `| ${r.step} | ${r.groups} | ${r.spearman.toFixed(3)} | ${r.agreementReward.toFixed(2)} | ${
          r.agreementEvaluator.toFixed(2)
        } | ${r.gapReward.toFixed(2)} | ${r.gapEvaluator.toFixed(2)} | ${r.qGap.toFixed(2)} |`,
      );
    }
    if (values.out) {
      await Deno.writeTextFile(values.out, JSON.stringify({ flags: values, rows }, null, 2) + "\n");
    }
  } finally {
    policy.close();
    rewards.close();
    await Promise.all([policyProc.stop(), reward.stop()]);
  }
}

export const STEP_SIGNAL_COMMAND: CommandSpec<typeof STEP_SIGNAL_FLAGS> = {
  name: "experiments/step_signal/run.ts",
  summary: "how well each step's Q ranking predicts the final image's reward (base model)",
  flags: STEP_SIGNAL_FLAGS,
  examples: ["deno run -A experiments/step_signal/run.ts --candidates 8 --trajectories 2"],
  run: (values) => stepSignal(values),
};

if (import.meta.main) await runCommand(STEP_SIGNAL_COMMAND);
