/**
 * `deno task make-model`: writes a diffusers-layout model folder with seeded random weights, so the
 * full-size path is exercised without downloading a checkpoint.
 *
 *   deno task make-model --config sd15 --out .tmp/sd15 [--dtype f16] [--seed 0] [--max-shard-mb 0]
 *
 * `--dtype f16` writes the `fp16` variant files (`diffusion_pytorch_model.fp16.safetensors`; load
 * them with `--variant fp16`); `--max-shard-mb N` shards each component as `save_pretrained` does.
 * Configs: sd15 (1.07 B parameters, 4.3 GB in float32) and sd15-mini (the same layout, small widths).
 */
import type { FlagSpecs } from "../lib/rpc/flags.ts";
import { type CommandSpec, runCommand } from "../lib/cli/command.ts";
import { fixturePath } from "../lib/testing/fixtures.ts";
import { pathExists } from "../lib/fs/exists.ts";
import { makeModelFolder } from "../services/policy/model/sd15/make_model.ts";
import { MODEL_SPECS, modelSpec } from "../services/policy/model/sd15/specs.ts";

export const MAKE_MODEL_FLAGS = {
  config: {
    type: "string",
    default: "sd15",
    choices: Object.keys(MODEL_SPECS),
    description: "which model to write",
  },
  out: { type: "string", required: true, description: "output folder (created)" },
  dtype: { type: "string", default: "f32", choices: ["f32", "f16"], description: "weight precision" },
  seed: { type: "int", default: 0, min: 0, description: "seed of the random weights" },
  maxShardMb: {
    type: "int",
    default: 0,
    min: 0,
    description: "shard size in MB (0: one file per component)",
  },
  tokenizer: {
    type: "string",
    // Resolved at run time, so help and the README do not carry this machine's absolute path.
    default: "",
    description:
      "CLIP BPE vocabulary that tokenizer/ (vocab.json, merges.txt: transformers' CLIPTokenizer) " +
      "is written from (skipped when absent); empty: the shared " +
      "fixture clip-bpe/bpe_simple_vocab_16e6.txt.gz (../shared or $RDPO_SHARED_DIR)",
  },
} as const satisfies FlagSpecs;

export const MAKE_MODEL_COMMAND: CommandSpec<typeof MAKE_MODEL_FLAGS> = {
  name: "make-model",
  summary: "write a diffusers-layout model folder (sd15, sd15-mini) with seeded random weights",
  description:
    "--dtype f16 writes the fp16 variant files (load them with --variant fp16); --max-shard-mb N " +
    "shards each component as save_pretrained does. sd15 is 1.07 B parameters (4.3 GB in float32).",
  flags: MAKE_MODEL_FLAGS,
  examples: [
    "deno task make-model --config sd15-mini --out .tmp/sd15-mini",
    "deno task make-model --config sd15 --out .tmp/sd15 --dtype f16 --max-shard-mb 1000",
  ],
  run: makeModel,
};

async function makeModel(values: {
  config: string;
  out: string;
  dtype: string;
  seed: number;
  maxShardMb: number;
  tokenizer: string;
}): Promise<void> {
  const t0 = performance.now();
  const tokenizer = values.tokenizer || fixturePath("clip-bpe", "bpe_simple_vocab_16e6.txt.gz");
  let last = 0;
  const files = await makeModelFolder({
    out: values.out,
    spec: modelSpec(values.config),
    dtype: values.dtype as "f32" | "f16",
    seed: values.seed,
    maxShardBytes: values.maxShardMb * 1_000_000,
    tokenizerVocab: (await pathExists(tokenizer)) ? tokenizer : null,
    onProgress(component, done, total) {
      const now = performance.now();
      if (now - last > 2000 || done === total) {
        last = now;
        console.error(`${component}: ${done}/${total} tensors (${((now - t0) / 1000).toFixed(0)} s)`);
      }
    },
  });
  for (const f of files) console.log(`${f.path}\t${(f.bytes / 1e6).toFixed(1)} MB`);
  const total = files.reduce((a, f) => a + f.bytes, 0);
  console.log(
    `${values.out}: ${(total / 1e9).toFixed(2)} GB in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
  );
}

if (import.meta.main) await runCommand(MAKE_MODEL_COMMAND);
