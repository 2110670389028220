/**
 * The sd15 bench's quick mode, as CI runs it: `deno task bench --only sd15 --quick` as a command on
 * whatever backend is here (webgpu over lavapipe when .ci/run installed it, else the CPU fallback),
 * and the same code path in-process on the wasm (CPU) backend, so the CPU path runs even where a
 * WebGPU adapter exists. Both run sd15-mini (SD1.5's block structure and key names, small widths) at
 * 8x8 latents: CLIP encode, guided UNet forward, VAE decode, DDIM sampling, the trainer's
 * SampleCandidates with log-probs, and an RDPO LoRA train step on the sampled pairs.
 */
import { join } from "node:path";
import { assert, assertEquals } from "../../../../lib/testing/assert.ts";
import { fixturePath, hasFixtures, repoRoot } from "../../../../lib/testing/fixtures.ts";
import { hasWebGpuAdapter } from "../../../../lib/tensor/backend.ts";
import { parseClipTextConfig, parseUNetConfig, parseVaeConfig } from "../config.ts";
import { UNet2DConditionModel } from "../unet.ts";
import { AutoencoderKL } from "../vae.ts";
import { CLIPTextModel } from "../clip_text.ts";
import { runSd15Bench, type Sd15BenchResult } from "./bench.ts";
import { formatSd15Bench } from "./bench_format.ts";
import { modelSpec } from "./specs.ts";

const ignore = !hasFixtures(fixturePath("clip-bpe", "bpe_simple_vocab_16e6.txt.gz"));

const ROWS = [
  "CLIP text encode",
  "UNet forward, batch 2 + CFG",
  "VAE decode, 2 images 64x64",
  "DDIM sampling",
  "SampleCandidates, 2 prompts x K 2",
  "RDPO LoRA train step, 2 pairs",
];

function miniParameters(): number {
  const s = modelSpec("sd15-mini");
  return new UNet2DConditionModel(parseUNetConfig(s.unet)).params.count() +
    new AutoencoderKL(parseVaeConfig(s.vae)).params.count() +
    new CLIPTextModel(parseClipTextConfig(s.textEncoder)).params.count();
}

function assertQuickResult(r: Sd15BenchResult, backend: string): void {
  assertEquals(r.device.backend, backend);
  assertEquals(r.model, "sd15-mini");
  assertEquals(r.latent, 8);
  assertEquals(r.parameters, miniParameters());
  assertEquals(r.rows.map((row) => ROWS.find((p) => row.what.startsWith(p)) ?? row.what), ROWS);
  for (const row of r.rows) assert(row.firstMs > 0 && Number.isFinite(row.ms), `${row.what}: ${row.ms}`);
  assertEquals(r.losses.length, r.rows[0].reps + 1);
  assert(r.losses.every((l) => Number.isFinite(l) && l > 0), `losses ${r.losses}`);
  // Step 1: lora_B = 0, the policy is the reference, both log-ratios are 0: -log sigmoid(0).
  assert(Math.abs(r.losses[0] - Math.LN2) < 1e-5, `first loss ${r.losses[0]}`);
  assert(r.adapterChanged && r.adapterMaxDelta > 0, `adapter did not move: ${r.adapterMaxDelta}`);
  // B = 2 prompts x K = 2 candidates, each a finite Gaussian log-density of its own draw.
  assertEquals(r.logProbs.length, 4);
  assert(r.logProbs.every(Number.isFinite), `log-probs ${r.logProbs}`);
  assert(r.measuredPeakBytes !== null && r.measuredPeakBytes > 0);
}

/** Runs `deno run -A bench/main.ts --only sd15 --quick --out F`; returns the result and the table. */
async function quickBenchCommand(
  env: Record<string, string> = {},
): Promise<{ result: Sd15BenchResult; table: string }> {
  const dir = await Deno.makeTempDir({ prefix: "sd15-quick-" });
  try {
    const out = join(dir, "sd15.md");
    const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "bench/main.ts", "--only", "sd15", "--quick", "--out", out],
      cwd: repoRoot,
      env,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assertEquals(code, 0, new TextDecoder().decode(stderr).slice(-4000));
    const table = await Deno.readTextFile(out);
    assert(new TextDecoder().decode(stdout).includes(table.trim()), "the printed table is the one in --out");
    assert(table.includes("Model sd15-mini: SD1.5 layout") && table.includes("8x8 latents"), table);
    return { result: JSON.parse(await Deno.readTextFile(`${out}.json`)) as Sd15BenchResult, table };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test({
  name:
    "deno task bench --only sd15 --quick runs here (webgpu when an adapter exists, else the CPU fallback)",
  ignore,
  async fn() {
    const { result, table } = await quickBenchCommand();
    const webgpu = await hasWebGpuAdapter();
    assertQuickResult(result, webgpu ? "webgpu" : "wasm");
    assert(table.includes(webgpu ? "fallback adapter: " : "CPU fallback"), table);
  },
});

Deno.test({
  name:
    "deno task bench --only sd15 --quick without a WebGPU adapter (CI without the Vulkan ICD) runs on wasm",
  ignore,
  async fn() {
    // Deno's WebGPU offers only the backends DENO_WEBGPU_BACKEND names; dx12 does not exist on Linux
    // or macOS, so requestAdapter() returns null as it does where no Vulkan driver is installed.
    const { result, table } = await quickBenchCommand({ DENO_WEBGPU_BACKEND: "dx12" });
    assertQuickResult(result, "wasm");
    assert(table.includes("no WebGPU adapter: CPU fallback"), table);
  },
});

Deno.test({
  name: "the quick sd15 bench's code path on the wasm (CPU) backend: sampling with log-probs, a LoRA step",
  ignore,
  async fn() {
    const result = await runSd15Bench({ quick: true, backend: "wasm", iters: 0, log: () => {} });
    assertQuickResult(result, "wasm");
    for (const row of result.rows) assertEquals(row.ms, row.firstMs); // iters 0: the first call only
    const table = formatSd15Bench(result);
    assert(table.includes("backend wasm") && table.includes("CPU fallback"), table);
    assert(table.includes("Times: the first call only"), table);
    assert(table.includes("checksum changed"), table);
  },
});
