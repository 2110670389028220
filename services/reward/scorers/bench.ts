/**
 * Throughput of the scorers on the fixture models (`shared/fixtures/clip_scorer`, the tiny CLIP in
 * the real export layouts): images/s through `Scorer.score` (decode-free: PIL-exact preprocessing,
 * tokenization, ONNX, head) against a raw `session.run` of the same model on the same batch with
 * the inputs prepared beforehand, so the difference is the scorer's own overhead. Prints a table.
 *
 *   deno run -A services/reward/scorers/bench.ts [--batches 1,8,32] [--seconds 2] [--ep cpu]
 */

import * as ort from "onnxruntime-node";
import { fixturePath, hasFixtures } from "../../../lib/testing/fixtures.ts";
import type { RgbImage } from "../../../lib/image/png.ts";
import { ClipBpeTokenizer } from "../../../lib/text/clip_bpe.ts";
import { createBuiltinScorer, createScorer } from "../bundle.ts";
import type { Scorer } from "../scorer.ts";
import { clipPixelValues } from "../preprocess/clip_image.ts";
import { linkBundle } from "../testing/bundle_dir.ts";
import { loadClipFixture } from "../testing/clip_fixture.ts";
import { EXECUTION_PROVIDERS, type ExecutionProvider } from "./onnx_session.ts";
import type { FlagSpecs } from "../../../lib/rpc/flags.ts";
import { type CommandSpec, runCommand } from "../../../lib/cli/command.ts";

export interface BenchRow {
  scorer: string;
  batch: number;
  scorerImagesPerSec: number;
  rawImagesPerSec: number | null;
  preprocessImagesPerSec: number;
}

async function timeIt(fn: () => Promise<unknown>, seconds: number): Promise<number> {
  await fn(); // warm-up
  let n = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < seconds * 1000 || n < 2) {
    await fn();
    n++;
  }
  return (performance.now() - t0) / 1000 / n;
}

/** Runs the benchmark and prints one table row per scorer and batch size; returns the rows. */
export async function benchScorers(
  { batches = [1, 8, 32], seconds = 2, executionProvider = "cpu" as ExecutionProvider } = {},
): Promise<BenchRow[]> {
  const clipDir = fixturePath("clip_scorer");
  const head = fixturePath("aesthetic", "sac+logos+ava1-l14-linearMSE.safetensors");
  const vocab = fixturePath("clip-bpe", "bpe_simple_vocab_16e6.txt.gz");
  if (!hasFixtures(clipDir, head, vocab)) {
    throw new Error("benchScorers needs the clip_scorer, aesthetic and clip-bpe fixtures");
  }
  const fx = await loadClipFixture(clipDir);
  const base: RgbImage[] = fx.images;
  const prompts = fx.prompts;
  const size = fx.size;
  const preprocessing = { type: "clip", size };
  const aestheticDir = await linkBundle(
    {
      format: 1,
      kind: "aesthetic",
      version: "bench",
      models: { vision: { file: "clip_vision.onnx" } },
      preprocessing,
    },
    { "clip_vision.onnx": `${clipDir}/clip_vision.onnx`, "head.safetensors": head },
  );
  const pickDir = await linkBundle(
    {
      format: 1,
      kind: "pickscore",
      version: "bench",
      tokenizer: { type: "clip_bpe", file: "bpe.gz" },
      preprocessing,
    },
    { "clip.onnx": `${clipDir}/clip.onnx`, "bpe.gz": vocab },
  );
  const options = { executionProvider };
  const scorers: [string, Scorer, string | null][] = [
    ["aesthetic", await createScorer(aestheticDir, undefined, options), `${clipDir}/clip_vision.onnx`],
    ["pickscore", await createScorer(pickDir, undefined, options), `${clipDir}/clip.onnx`],
    ["jpeg_compressibility", await createBuiltinScorer("jpeg_compressibility"), null],
  ];
  const tok = await ClipBpeTokenizer.fromFile(vocab);
  const rows: BenchRow[] = [];
  try {
    for (const [name, scorer, rawModel] of scorers) {
      const raw = rawModel
        ? await ort.InferenceSession.create(rawModel, { executionProviders: [executionProvider] })
        : null;
      try {
        for (const batch of batches) {
          const images = Array.from({ length: batch }, (_, i) => base[i % base.length]);
          const ps = scorer.needsPrompts ? images.map((_, i) => prompts[i % prompts.length]) : [];
          const scorerSec = await timeIt(() => scorer.score(images, ps), seconds);
          const preSec = await timeIt(() => Promise.resolve(clipPixelValues(images, size)), seconds / 2);
          let rawSec: number | null = null;
          if (raw) {
            const pixels = new ort.Tensor("float32", clipPixelValues(images, size), [batch, 3, size, size]);
            const feeds: Record<string, ort.Tensor> = { pixel_values: pixels };
            if (raw.inputNames.includes("input_ids")) {
              const b = tok.encodeBatch([...new Set(ps)], { contextLength: 77, padId: 0 });
              const t = b.inputIds.length / 77;
              feeds.input_ids = new ort.Tensor("int64", BigInt64Array.from(b.inputIds, BigInt), [t, 77]);
              feeds.attention_mask = new ort.Tensor("int64", BigInt64Array.from(b.attentionMask, BigInt), [
                t,
                77,
              ]);
            }
            rawSec = await timeIt(() => raw.run(feeds), seconds);
          }
          rows.push({
            scorer: name,
            batch,
            scorerImagesPerSec: batch / scorerSec,
            rawImagesPerSec: rawSec === null ? null : batch / rawSec,
            preprocessImagesPerSec: batch / preSec,
          });
        }
      } finally {
        await raw?.release();
      }
    }
  } finally {
    for (const [, s] of scorers) await s.close();
    await Deno.remove(aestheticDir, { recursive: true });
    await Deno.remove(pickDir, { recursive: true });
  }
  const fmt = (x: number | null) => (x === null ? "-" : x.toFixed(1)).padStart(12);
  console.log(
    `execution provider: ${executionProvider}; images: clip_scorer fixture (${
      base.map((b) => `${b.width}x${b.height}`).join(", ")
    })`,
  );
  console.log(
    `${"scorer".padEnd(22)}${"batch".padStart(6)}${"Scorer img/s".padStart(14)}${
      "raw run img/s".padStart(15)
    }${"preproc img/s".padStart(15)}`,
  );
  for (const r of rows) {
    console.log(
      `${r.scorer.padEnd(22)}${String(r.batch).padStart(6)}  ${fmt(r.scorerImagesPerSec)} ${
        fmt(r.rawImagesPerSec)
      }   ${fmt(r.preprocessImagesPerSec)}`,
    );
  }
  return rows;
}

export const SCORER_BENCH_FLAGS = {
  batches: { type: "string", default: "1,8,32", description: "comma-separated batch sizes" },
  seconds: { type: "number", default: 2, min: 0, description: "seconds measured per case" },
  ep: {
    type: "string",
    default: "cpu",
    choices: EXECUTION_PROVIDERS,
    description: "ONNX Runtime execution provider",
  },
} as const satisfies FlagSpecs;

export const SCORER_BENCH_COMMAND: CommandSpec<typeof SCORER_BENCH_FLAGS> = {
  name: "services/reward/scorers/bench.ts",
  summary: "scorer throughput vs raw ONNX Runtime session.run on the fixture CLIP (needs ../shared)",
  flags: SCORER_BENCH_FLAGS,
  examples: ["deno run -A services/reward/scorers/bench.ts --batches 1,8 --seconds 1"],
  async run(values) {
    await benchScorers({
      batches: values.batches.split(",").map(Number),
      seconds: values.seconds,
      executionProvider: values.ep as ExecutionProvider,
    });
  },
};

if (import.meta.main) await runCommand(SCORER_BENCH_COMMAND);
