import { assert, assertEquals, assertRejects } from "../../lib/testing/assert.ts";
import { FailedPreconditionError, InvalidArgumentError } from "../../lib/errors.ts";
import type { TensorRecord } from "../../lib/tensor/safetensors.ts";
import { seededRandom } from "./random.ts";
import {
  type CheckpointData,
  checkpointName,
  type CheckpointPhase,
  listCheckpoints,
  loadLatestCheckpoint,
  readLatestPointer,
  writeCheckpoint,
} from "./checkpoint.ts";

const HASH_A = "a".repeat(64);
const HASH_B = "b".repeat(64);

function f32(shape: number[], seed: number): TensorRecord {
  const r = seededRandom(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = (r() - 0.5) * 1e-2;
  // Values whose bits a lossy path would change: -0, a subnormal, a NaN payload, infinities.
  if (n >= 5) {
    data[0] = -0;
    data[1] = 1e-45;
    new Uint32Array(data.buffer)[2] = 0x7fc01234;
    data[3] = Infinity;
    data[4] = -Infinity;
  }
  return { dtype: "F32", shape, data };
}

function sampleData(step: number, withOptimizer = true): CheckpointData {
  const keyA = "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight";
  const keyB = "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_B.weight";
  const weights = new Map<string, TensorRecord>([[keyA, f32([4, 32], step)], [keyB, f32([32, 4], step + 1)]]);
  const optState = new Map<string, TensorRecord>([
    [`${keyA}.exp_avg`, f32([4, 32], step + 2)],
    [`${keyA}.exp_avg_sq`, f32([4, 32], step + 3)],
    [`${keyB}.exp_avg`, f32([32, 4], step + 4)],
    [`${keyB}.exp_avg_sq`, f32([32, 4], step + 5)],
    ["steps", { dtype: "I64", shape: [2], data: new BigInt64Array([BigInt(step), -1n]) }],
  ]);
  return {
    state: {
      step,
      prompt_cursor: { epoch: 1, index: step % 45 },
      rng: { train: step * 40, eval: 7 },
      metrics: { loss: 0.5, h_l: -0.001 },
      config_hash: HASH_A,
      extra: { elapsed_seconds: 12.5 },
    },
    adapter: {
      weights,
      rank: 4,
      alpha: 4,
      targetModules: ["to_q", "to_k", "to_v", "to_out.0"],
      checksum: `c${step}`,
    },
    optimizer: withOptimizer ? { state: optState, step: step * 5 } : null,
    configJson: `{"method":"rdpo","step":${step}}`,
  };
}

function bytesOf(t: TensorRecord): Uint8Array {
  return new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
}

function assertTensorsIdentical(actual: Map<string, TensorRecord>, expected: Map<string, TensorRecord>) {
  assertEquals([...actual.keys()].sort(), [...expected.keys()].sort());
  for (const [k, e] of expected) {
    const a = actual.get(k)!;
    assertEquals([a.dtype, a.shape], [e.dtype, e.shape], k);
    assertEquals(bytesOf(a), bytesOf(e), `${k} bytes`);
  }
}

async function tempRun(): Promise<string> {
  return await Deno.makeTempDir({ prefix: "checkpoint_test_" });
}

Deno.test("checkpoint: round trip is bit-identical (adapter, optimizer, state, config)", async () => {
  const run = await tempRun();
  const data = sampleData(40);
  const dir = await writeCheckpoint(run, data, { keepLast: 3 });
  assert(dir.endsWith("checkpoints/step-000040"), dir);
  const loaded = await loadLatestCheckpoint(run, { configHash: HASH_A });
  assert(loaded);
  assertEquals(loaded.name, "step-000040");
  assertEquals(loaded.state, data.state);
  assertTensorsIdentical(loaded.adapter.weights, data.adapter.weights);
  assertTensorsIdentical(loaded.optimizer!.state, data.optimizer!.state);
  assertEquals(loaded.optimizer!.step, 200);
  assertEquals(
    [loaded.adapter.rank, loaded.adapter.alpha, loaded.adapter.targetModules, loaded.adapter.checksum],
    [4, 4, ["to_q", "to_k", "to_v", "to_out.0"], "c40"],
  );
  assertEquals(loaded.configJson, data.configJson);
  await Deno.remove(run, { recursive: true });
});

Deno.test("checkpoint: without optimizer state; an empty run has no checkpoint", async () => {
  const run = await tempRun();
  assertEquals(await loadLatestCheckpoint(run), null);
  await writeCheckpoint(run, sampleData(1, false), { keepLast: 1 });
  const loaded = await loadLatestCheckpoint(run);
  assertEquals(loaded!.optimizer, null);
  await Deno.remove(run, { recursive: true });
});

Deno.test("checkpoint: latest pointer, listing and keep-last pruning", async () => {
  const run = await tempRun();
  for (const step of [10, 20, 30, 40]) await writeCheckpoint(run, sampleData(step), { keepLast: 2 });
  assertEquals((await listCheckpoints(run)).map((c) => c.step), [30, 40]);
  assertEquals(await readLatestPointer(run), "step-000040");
  assertEquals((await loadLatestCheckpoint(run))!.state.step, 40);
  // A checkpoint's own files only: no temporary leftovers.
  const names: string[] = [];
  for await (const e of Deno.readDir(`${run}/checkpoints`)) names.push(e.name);
  assertEquals(names.sort(), ["latest", "step-000030", "step-000040"]);
  await Deno.remove(run, { recursive: true });
});

const PHASES: CheckpointPhase[] = ["adapter", "optimizer", "state", "sealed", "renamed", "latest"];

Deno.test("checkpoint: a crash at any phase leaves the previous checkpoint intact and loadable", async () => {
  for (const crashAt of PHASES) {
    const run = await tempRun();
    const first = sampleData(10);
    await writeCheckpoint(run, first, { keepLast: 5 });
    await assertRejects(
      () =>
        writeCheckpoint(run, sampleData(20), {
          keepLast: 5,
          onPhase: (p) => {
            if (p === crashAt) throw new Error(`simulated crash after ${p}`);
          },
        }),
      Error,
      "simulated crash",
    );
    const loaded = await loadLatestCheckpoint(run, { configHash: HASH_A });
    // The pointer is the commit point: only a crash after it exposes the new checkpoint.
    const expectedStep = crashAt === "latest" ? 20 : 10;
    assertEquals(loaded!.state.step, expectedStep, `crash after ${crashAt}`);
    if (expectedStep === 10) {
      assertEquals(loaded!.state, first.state);
      assertTensorsIdentical(loaded!.adapter.weights, first.adapter.weights);
    }
    // The next write of the same step succeeds and commits.
    await writeCheckpoint(run, sampleData(20), { keepLast: 5 });
    assertEquals((await loadLatestCheckpoint(run))!.state.step, 20, `rewrite after ${crashAt}`);
    assertEquals((await listCheckpoints(run)).map((c) => c.step), [10, 20]);
    await Deno.remove(run, { recursive: true });
  }
});

Deno.test("checkpoint: a hard crash's half-written temp folder is ignored, then cleaned", async () => {
  const run = await tempRun();
  await writeCheckpoint(run, sampleData(10), { keepLast: 3 });
  const torn = `${run}/checkpoints/.tmp-step-000020-deadbeef`;
  await Deno.mkdir(torn);
  await Deno.writeFile(`${torn}/adapter_model.safetensors`, new Uint8Array([1, 2, 3]));
  await Deno.writeTextFile(`${run}/checkpoints/latest.tmp-12345678`, "step-0000");
  assertEquals((await loadLatestCheckpoint(run))!.state.step, 10);
  assertEquals((await listCheckpoints(run)).map((c) => c.step), [10]);
  await writeCheckpoint(run, sampleData(20), { keepLast: 3 });
  const names: string[] = [];
  for await (const e of Deno.readDir(`${run}/checkpoints`)) names.push(e.name);
  assertEquals(names.sort(), ["latest", "step-000010", "step-000020"]);
  await Deno.remove(run, { recursive: true });
});

Deno.test("checkpoint: a missing or dangling pointer falls back to the newest complete folder", async () => {
  const run = await tempRun();
  await writeCheckpoint(run, sampleData(10), { keepLast: 3 });
  await writeCheckpoint(run, sampleData(20), { keepLast: 3 });
  // A step folder without its state file (cannot happen through writeCheckpoint) is skipped.
  await Deno.mkdir(`${run}/checkpoints/step-000030`);
  await Deno.remove(`${run}/checkpoints/latest`);
  assertEquals((await loadLatestCheckpoint(run))!.state.step, 20);
  await Deno.writeTextFile(`${run}/checkpoints/latest`, "step-000099\n");
  assertEquals((await loadLatestCheckpoint(run))!.state.step, 20);
  await Deno.remove(run, { recursive: true });
});

Deno.test("checkpoint: config hash mismatch is a clear error unless forced", async () => {
  const run = await tempRun();
  await writeCheckpoint(run, sampleData(10), { keepLast: 3 });
  const e = await assertRejects(
    () => loadLatestCheckpoint(run, { configHash: HASH_B }),
    FailedPreconditionError,
    "config hash aaaaaaaaaaaa..., the current config hashes to bbbbbbbbbbbb...",
  );
  assert(e.message.includes("force"), e.message);
  assertEquals((await loadLatestCheckpoint(run, { configHash: HASH_B, force: true }))!.state.step, 10);
  await Deno.remove(run, { recursive: true });
});

Deno.test("checkpoint: a corrupted file is detected by its recorded sha256", async () => {
  const run = await tempRun();
  const dir = await writeCheckpoint(run, sampleData(10), { keepLast: 3 });
  const path = `${dir}/optimizer.safetensors`;
  const bytes = await Deno.readFile(path);
  bytes[bytes.length - 1] ^= 0xff;
  await Deno.writeFile(path, bytes);
  await assertRejects(
    () => loadLatestCheckpoint(run),
    FailedPreconditionError,
    "optimizer.safetensors is corrupt",
  );
  await Deno.remove(path);
  await assertRejects(
    () => loadLatestCheckpoint(run),
    FailedPreconditionError,
    "optimizer.safetensors is missing",
  );
  await Deno.remove(run, { recursive: true });
});

Deno.test("checkpoint: bad inputs name the field", async () => {
  const run = await tempRun();
  await assertRejects(
    () => writeCheckpoint(run, sampleData(1), { keepLast: 0 }),
    InvalidArgumentError,
    "checkpoint.keep_last",
  );
  const bad = sampleData(1);
  bad.state.config_hash = "nothex";
  await assertRejects(
    () => writeCheckpoint(run, bad, { keepLast: 1 }),
    InvalidArgumentError,
    "state.config_hash",
  );
  const badRng = sampleData(1);
  badRng.state.rng.train = -3;
  await assertRejects(
    () => writeCheckpoint(run, badRng, { keepLast: 1 }),
    InvalidArgumentError,
    "state.rng.train",
  );
  assertEquals(checkpointName(7), "step-000007");
  assertEquals(checkpointName(1234567), "step-1234567");
  await Deno.remove(run, { recursive: true });
});

Deno.test("checkpoint: a truncated latest checkpoint falls back to the previous one and says so", async () => {
  const run = await tempRun();
  await writeCheckpoint(run, sampleData(10), { keepLast: 3 });
  const latest = await writeCheckpoint(run, sampleData(20), { keepLast: 3 });
  const path = `${latest}/adapter_model.safetensors`;
  const bytes = await Deno.readFile(path);
  await Deno.writeFile(path, bytes.subarray(0, Math.floor(bytes.length / 2)));
  const told: string[] = [];
  const loaded = await loadLatestCheckpoint(run, { onFallback: (m) => told.push(m) });
  assertEquals(loaded!.state.step, 10);
  assertEquals(told.length, 1);
  assert(
    told[0].includes("step-000020 failed verification") &&
      told[0].includes("adapter_model.safetensors is corrupt") &&
      told[0].includes("falling back to step-000010"),
    told[0],
  );
  await Deno.remove(run, { recursive: true });
});
