/**
 * PolicyService over real gRPC on loopback: every RPC answered, bad input mapped to status codes,
 * and the server process lifecycle (listening line, health, SIGTERM).
 */
import { join } from "node:path";
import { LossKind, ModelRole, PolicyService } from "../../gen/rdpo/v1/policy_pb.ts";
import { Health } from "../../gen/grpc/health/v1/health_pb.ts";
import { createClient } from "../../lib/rpc/client.ts";
import { Code } from "../../lib/rpc/status.ts";
import { rpcFailure } from "../../lib/rpc/testing.ts";
import { decodeFloat32, encodeTensor } from "../../lib/tensor/codec.ts";
import { assert, assertEquals, assertNotEquals } from "../../lib/testing/assert.ts";
import { startPolicyService } from "./main.ts";
import { writeTinyModel } from "./testing/tiny_model.ts";

const modelDir = await Deno.makeTempDir({ prefix: "rdpo-policy-svc-" });
await writeTinyModel(modelDir);
const adapterRoot = await Deno.makeTempDir({ prefix: "rdpo-policy-adapters-" });

function latents(b: number, fill = 0.1) {
  const data = new Float32Array(b * 3 * 8 * 8).map((_, i) => Math.sin(i * 0.37 + fill));
  return encodeTensor(data, [b, 3, 8, 8]);
}

const step = { numInferenceSteps: 10, guidanceScale: 3 };

/** The policy service in-process on a free loopback port, over the tiny model. */
function startTinyPolicy(...extra: string[]) {
  return startPolicyService([
    "--model-dir",
    modelDir,
    "--port",
    "0",
    "--adapter-root",
    adapterRoot,
    ...extra,
  ]);
}

Deno.test("policy service: every RPC over loopback gRPC", async () => {
  const svc = await startTinyPolicy("--lora-rank", "2");
  const client = createClient(PolicyService, svc.address.address);
  try {
    const info = await client.getInfo({});
    assertEquals(info.latentShape, [3n, 8n, 8n]);
    assertEquals(info.role, ModelRole.POLICY);
    assert(info.adapterParameters > 0n);

    const enc = await client.encodePrompts({ prompts: ["a red circle", "a blue square"] });
    assertEquals(decodeFloat32("e", enc.promptEmbeds).shape, [2, 8, 16]);

    const s = await client.sampleCandidates({
      conditioning: { prompts: ["a red circle", "a blue square"] },
      latents: latents(2),
      stepIndex: 1,
      step,
      numCandidates: 3,
      noise: { seed: 1n, stream: 10n },
      predictCandidateNoise: true,
      decodeCandidates: true,
      decodeParent: true,
    });
    assertEquals(decodeFloat32("c", s.candidates).shape, [2, 3, 3, 8, 8]);
    assertEquals(decodeFloat32("l", s.logProbs).shape, [2, 3]);
    assertEquals(s.candidateImages.length, 6);
    assertEquals(s.timestep, 801n); // T = 10: 901, 801, ... (leading spacing, offset 1)
    assertEquals(s.prevTimestep, 701n);

    const eps = await client.predictNoise({
      conditioning: { prompts: ["a red circle"] },
      latents: latents(2),
      timesteps: [500n],
      role: ModelRole.REFERENCE,
    });
    assertEquals(decodeFloat32("n", eps.noisePred).shape, [2, 3, 8, 8]);

    const dec = await client.decode({ latents: latents(1), returnTensor: true });
    assertEquals(dec.images[0].width, 8);
    const back = await client.encodeImages({ images: dec.images });
    assertEquals(decodeFloat32("l", back.latents).shape, [1, 3, 8, 8]);

    const gen = await client.generate({
      conditioning: { prompts: ["a red circle"] },
      step: { ...step, numInferenceSteps: 3 },
      noise: { seed: 2n, stream: 0n },
      returnLatents: true,
    });
    assertEquals(gen.images.length, 1);

    const cands = decodeFloat32("c", s.candidates).data;
    const d = 3 * 8 * 8;
    const pick = (k: number) => {
      const out = new Float32Array(2 * d);
      for (let b = 0; b < 2; b++) out.set(cands.subarray((b * 3 + k) * d, (b * 3 + k + 1) * d), b * d);
      return encodeTensor(out, [2, 3, 8, 8]);
    };
    const side = (k: number) => ({
      conditioning: { prompts: ["a red circle", "a blue square"] },
      latents: latents(2),
      nextLatents: pick(k),
      stepIndices: [1],
    });
    const lr = await client.logRatios({ transitions: side(0), step });
    assertEquals([...decodeFloat32("h", lr.logRatios).data], [0, 0]);

    const before = await client.getAdapter({ includeOptimizerState: true });
    const tr = await client.trainStep({
      winners: side(0),
      losers: side(1),
      step,
      loss: { kind: LossKind.RDPO, beta: 0.1, lambda: 100 },
      optimizer: { learningRate: 0.01 },
      expectedOptimizerStep: 0n,
      requestId: "t0",
    });
    assertEquals(tr.optimizerStep, 1n);
    assertEquals(tr.pairs.length, 2);
    assertNotEquals(tr.adapterChecksum, before.adapter!.checksum);

    const grads = await client.trainStep({
      winners: side(0),
      losers: side(1),
      step,
      loss: { kind: LossKind.DPO, beta: 0.1 },
      returnGradients: true,
    });
    assert(grads.gradients.length > 0);
    const applied = await client.applyGradients({
      gradients: grads.gradients,
      optimizer: { learningRate: 0.01 },
      expectedOptimizerStep: 1n,
    });
    assertEquals(applied.optimizerStep, 2n);

    const saved = await client.saveAdapter({ path: "svc/a.safetensors" });
    assert(saved.bytes > 0n);
    const loaded = await client.loadAdapter({ source: { case: "path", value: "svc/a.safetensors" } });
    assertEquals(loaded.checksum, saved.checksum);
    const restored = await client.loadAdapter({ source: { case: "adapter", value: before.adapter! } });
    assertEquals(restored.checksum, before.adapter!.checksum);
    const reset = await client.loadAdapter({ reset: true, seed: 5n });
    assertEquals(reset.optimizerStep, 0n);
  } finally {
    client.close();
    await svc.stop();
  }
});

Deno.test("policy service: malformed requests get INVALID_ARGUMENT / FAILED_PRECONDITION naming the field", async () => {
  const svc = await startTinyPolicy("--max-batch", "8");
  const client = createClient(PolicyService, svc.address.address);
  try {
    const base = {
      conditioning: { prompts: ["a red circle"] },
      latents: latents(1),
      stepIndex: 0,
      step,
      numCandidates: 2,
      noise: { seed: 1n, stream: 0n },
    };
    const nan = latents(1);
    new DataView(nan.data.buffer, nan.data.byteOffset).setFloat32(8, NaN, true);
    const cases: [string, () => Promise<unknown>, number, string][] = [
      [
        "NaN latents",
        () => client.sampleCandidates({ ...base, latents: nan }),
        Code.INVALID_ARGUMENT,
        "latents",
      ],
      [
        "wrong rank",
        () => client.sampleCandidates({ ...base, latents: encodeTensor(new Float32Array(8), [8]) }),
        Code.INVALID_ARGUMENT,
        "latents",
      ],
      [
        "byte count",
        () => client.sampleCandidates({ ...base, latents: { ...latents(1), shape: [2n, 3n, 8n, 8n] } }),
        Code.INVALID_ARGUMENT,
        "latents",
      ],
      [
        "step not in schedule",
        () => client.sampleCandidates({ ...base, stepIndex: 10 }),
        Code.INVALID_ARGUMENT,
        "step_index",
      ],
      [
        "too many candidates",
        () => client.sampleCandidates({ ...base, numCandidates: 9 }),
        Code.RESOURCE_EXHAUSTED,
        "exceed",
      ],
      [
        "eta > 1",
        () => client.sampleCandidates({ ...base, step: { ...step, eta: 2 } }),
        Code.INVALID_ARGUMENT,
        "eta",
      ],
      [
        "timestep out of range",
        () =>
          client.predictNoise({ conditioning: base.conditioning, latents: latents(1), timesteps: [5000n] }),
        Code.INVALID_ARGUMENT,
        "timesteps[0]",
      ],
      [
        "eta 0 for log-ratios",
        () =>
          client.logRatios({
            transitions: {
              conditioning: base.conditioning,
              latents: latents(1),
              nextLatents: latents(1, 2),
              stepIndices: [0],
            },
            step: { ...step, eta: 0 },
          }),
        Code.INVALID_ARGUMENT,
        "eta",
      ],
      [
        "unknown adapter file",
        () => client.loadAdapter({ source: { case: "path", value: "missing.safetensors" } }),
        Code.INVALID_ARGUMENT,
        "path",
      ],
      [
        "adapter path escape",
        () => client.saveAdapter({ path: "../../etc/x.safetensors" }),
        Code.PERMISSION_DENIED,
        "outside",
      ],
      [
        "step accounting",
        () =>
          client.trainStep({
            winners: {
              conditioning: base.conditioning,
              latents: latents(1),
              nextLatents: latents(1, 2),
              stepIndices: [0],
            },
            losers: {
              conditioning: base.conditioning,
              latents: latents(1),
              nextLatents: latents(1, 3),
              stepIndices: [0],
            },
            step,
            expectedOptimizerStep: 7n,
          }),
        Code.FAILED_PRECONDITION,
        "expected_optimizer_step",
      ],
      [
        "5000-character adapter path",
        () => client.loadAdapter({ source: { case: "path", value: "a".repeat(5000) } }),
        Code.INVALID_ARGUMENT,
        "path",
      ],
      [
        "5000-character save path",
        () => client.saveAdapter({ path: `${"b".repeat(5000)}.safetensors` }),
        Code.INVALID_ARGUMENT,
        "path",
      ],
      [
        "latents larger than the limit",
        () =>
          client.sampleCandidates({
            ...base,
            numCandidates: 1,
            latents: encodeTensor(new Float32Array(4 * 256 * 256), [1, 4, 256, 256]),
          }),
        Code.RESOURCE_EXHAUSTED,
        "--max-latent-side",
      ],
      [
        "too many inference steps",
        () => client.sampleCandidates({ ...base, step: { ...step, numInferenceSteps: 100_000 } }),
        Code.RESOURCE_EXHAUSTED,
        "--max-inference-steps",
      ],
    ];
    for (const [name, call, code, field] of cases) {
      const e = await rpcFailure(call);
      assertEquals(e.code, code, `${name}: got ${e.code} ${e.details}`);
      assert(e.details.includes(field), `${name}: "${e.details}" does not name ${field}`);
      assert(e.details.length <= 400, `${name}: a ${e.details.length}-character message echoes too much`);
    }
    // The server lives on after every refusal.
    const health = createClient(Health, svc.address.address);
    assertEquals((await health.check({ service: "" })).status, 1);
    health.close();
  } finally {
    client.close();
    await svc.stop();
  }
});

Deno.test("policy service: SampleCandidates with lead_steps = the separate single-candidate calls, byte for byte", async () => {
  const svc = await startTinyPolicy("--lora-rank", "2");
  const client = createClient(PolicyService, svc.address.address);
  try {
    const info = await client.getInfo({});
    assert(info.sampleLeadSteps, "GetInfo advertises lead_steps");
    assert(info.sessionStream, "GetInfo advertises Session");
    const prompts = ["a red circle", "a blue square"];
    const conditioning = { prompts };
    const noise = { seed: 5n, stream: 40n }, leadNoise = { seed: 5n, stream: 7n };
    // Step 1 with K = 3 and a parent eps: its chosen candidate starts the lead steps 2 and 3.
    const first = await client.sampleCandidates({
      conditioning,
      latents: latents(2),
      stepIndex: 1,
      step,
      numCandidates: 3,
      noise,
      predictCandidateNoise: true,
    });
    const pick = (t: { data: Uint8Array; shape: bigint[] } | undefined) => {
      const { data } = decodeFloat32("t", t as never);
      const d = 3 * 8 * 8;
      const out = new Float32Array(2 * d);
      for (let j = 0; j < 2; j++) out.set(data.subarray((j * 3 + 1) * d, (j * 3 + 2) * d), j * d);
      return encodeTensor(out, [2, 3, 8, 8]);
    };
    const x2 = pick(first.candidates), eps2 = pick(first.candidateNoisePred);
    const last = {
      numCandidates: 2,
      noise,
      predictCandidateNoise: true,
      decodeCandidates: true,
      decodeParent: true,
    };
    // Separately: steps 2 and 3 with K = 1, then step 4.
    let x = x2;
    let parentNoisePred: typeof eps2 | undefined = eps2;
    for (const stepIndex of [2, 3]) {
      const r = await client.sampleCandidates({
        conditioning,
        latents: x,
        stepIndex,
        step,
        numCandidates: 1,
        noise: leadNoise,
        parentNoisePred,
      });
      x = { ...r.candidates!, shape: [2n, 3n, 8n, 8n] };
      parentNoisePred = undefined;
    }
    const separate = await client.sampleCandidates({ conditioning, latents: x, stepIndex: 4, step, ...last });
    const fused = await client.sampleCandidates({
      conditioning,
      latents: x2,
      stepIndex: 2,
      leadSteps: 2,
      leadNoise,
      parentNoisePred: eps2,
      step,
      ...last,
    });
    for (const f of ["candidates", "candidateNoisePred", "parentNoisePred", "logProbs"] as const) {
      assertEquals(fused[f]!.data, separate[f]!.data, f);
      assertEquals(fused[f]!.shape, separate[f]!.shape, f);
    }
    assertEquals(fused.parentLatents!.data, x.data, "the lead steps' result");
    assertEquals(separate.parentLatents, undefined);
    assertEquals(fused.candidateImages.map((i) => i.data), separate.candidateImages.map((i) => i.data));
    assertEquals(fused.parentImages.map((i) => i.data), separate.parentImages.map((i) => i.data));
    assertEquals([fused.timestep, fused.prevTimestep, fused.sigma], [
      separate.timestep,
      separate.prevTimestep,
      separate.sigma,
    ]);
    // Different lead noise: a different result (the key is used, not ignored).
    const other = await client.sampleCandidates({
      conditioning,
      latents: x2,
      stepIndex: 2,
      leadSteps: 2,
      leadNoise: { seed: 5n, stream: 8n },
      parentNoisePred: eps2,
      step,
      ...last,
    });
    assertNotEquals(other.candidates!.data, fused.candidates!.data);
    const e = await rpcFailure(() =>
      client.sampleCandidates({
        conditioning,
        latents: x2,
        stepIndex: 8,
        leadSteps: 2,
        leadNoise,
        step,
        ...last,
      })
    );
    assertEquals(e.code, Code.INVALID_ARGUMENT);
    assert(e.details.includes("lead_steps"), e.details);
  } finally {
    client.close();
    await svc.stop();
  }
});

Deno.test("policy service: the process prints its address, serves health, and exits 0 on SIGTERM", async () => {
  const main = join(import.meta.dirname!, "main.ts");
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", main, "--model-dir", modelDir, "--port", "0", "--adapter-root", adapterRoot],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  while (!out.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) break;
    out += value;
  }
  const m = out.match(/^listening on (\S+:\d+)\n/);
  assert(m, `first line was ${JSON.stringify(out)}`);
  const health = createClient(Health, m[1]);
  assertEquals((await health.check({ service: "rdpo.v1.PolicyService" })).status, 1);
  health.close();
  child.kill("SIGTERM");
  const status = await child.status;
  reader.releaseLock();
  await child.stdout.cancel().catch(() => {});
  await child.stderr.cancel();
  assertEquals(status.code, 0);
});
