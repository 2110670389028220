import { assert, assertEquals, assertRejects } from "../../lib/testing/assert.ts";
import { AlreadyExistsError, FailedPreconditionError } from "../../lib/errors.ts";
import { configHash, parseConfig, type RunConfig } from "./config.ts";
import { writeCheckpoint } from "./checkpoint.ts";
import { appendMetrics, readMetrics, type StepMetrics } from "./metrics.ts";
import { openRun, runPaths } from "./run_dir.ts";

function configIn(dir: string, extra = ""): RunConfig {
  return parseConfig(`scorers: [{name: aesthetic}]\nrun_dir: ${JSON.stringify(dir)}\n${extra}`);
}

function step(s: number): StepMetrics {
  return {
    type: "step",
    step: s,
    time: "",
    loss: 0.5,
    h_w: 0,
    h_l: 0,
    accuracy: 0.5,
    reward_margin: 0,
    pairs: 2,
    skipped_ties: 0,
    mean_reward: 1,
    step_seconds: 1,
    wire_ms: 1,
    phases: {},
  };
}

async function checkpointAt(dir: string, config: RunConfig, s: number) {
  await writeCheckpoint(dir, {
    state: {
      step: s,
      prompt_cursor: { epoch: 0, index: 2 * s },
      rng: {},
      metrics: {},
      config_hash: configHash(config),
    },
    adapter: { weights: new Map(), rank: 4, alpha: 4, targetModules: ["to_q"], checksum: "x" },
    optimizer: null,
  }, { keepLast: 2 });
}

Deno.test("run dir: a fresh run writes config.json and has no checkpoint", async () => {
  const dir = await Deno.makeTempDir({ prefix: "run_dir_test_" });
  const config = configIn(`${dir}/run`);
  const run = await openRun(config);
  assertEquals(run.checkpoint, null);
  assertEquals(run.paths, runPaths(`${dir}/run`));
  assertEquals(run.configHash, configHash(config));
  const written = parseConfig(await Deno.readTextFile(run.paths.config));
  assertEquals(written, config);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("run dir: an existing run is not overwritten without resume", async () => {
  const dir = await Deno.makeTempDir({ prefix: "run_dir_test_" });
  const config = configIn(dir);
  await openRun(config);
  await appendMetrics(runPaths(dir).metrics, step(1));
  await assertRejects(() => openRun(config), AlreadyExistsError, "already holds a run");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("run dir: resume loads the checkpoint and cuts metrics back to its step", async () => {
  const dir = await Deno.makeTempDir({ prefix: "run_dir_test_" });
  const config = configIn(dir);
  await openRun(config);
  for (let s = 1; s <= 5; s++) await appendMetrics(runPaths(dir).metrics, step(s));
  await checkpointAt(dir, config, 3);
  const run = await openRun(config, { resume: true });
  assertEquals(run.checkpoint!.state.step, 3);
  assertEquals(run.checkpoint!.state.prompt_cursor, { epoch: 0, index: 6 });
  assertEquals((await readMetrics(run.paths.metrics)).map((r) => r.step), [1, 2, 3]);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("run dir: resume without a checkpoint starts over; a changed config is refused unless forced", async () => {
  const dir = await Deno.makeTempDir({ prefix: "run_dir_test_" });
  const config = configIn(dir);
  await openRun(config);
  await appendMetrics(runPaths(dir).metrics, step(1));
  const fresh = await openRun(config, { resume: true });
  assertEquals(fresh.checkpoint, null);
  assertEquals(await readMetrics(fresh.paths.metrics), []);

  await checkpointAt(dir, config, 2);
  const changed = configIn(dir, "loss: {beta: 0.2}");
  await assertRejects(() => openRun(changed, { resume: true }), FailedPreconditionError, "config hash");
  const forced = await openRun(changed, { resume: true, force: true });
  assertEquals(forced.checkpoint!.state.step, 2);
  assert((await Deno.readTextFile(forced.paths.config)).includes(`"beta": 0.2`));
  // Operational changes (addresses, length) keep the hash: no force needed.
  const extended = configIn(dir, "training: {steps: 500}\nservices: {policy: 'other:1'}");
  assertEquals((await openRun(extended, { resume: true })).checkpoint!.state.step, 2);
  await Deno.remove(dir, { recursive: true });
});
