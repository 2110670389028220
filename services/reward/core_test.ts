import { assert, assertEquals, assertRejects } from "../../lib/testing/assert.ts";
import {
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  PermissionDeniedError,
  ServiceError,
} from "../../lib/errors.ts";
import { join } from "node:path";
import { BAD_SCORE_REQUESTS, rgb, TEST_LIMITS } from "./bad_score_requests.ts";
import { RewardCore } from "./core.ts";
import { fakeScore, FakeScorer } from "./fake_scorer.ts";
import { ScorerRegistry } from "./registry.ts";
import { bundleScorerFactory } from "./scorer_factory.ts";
import { buildLinearImageScorerOnnx } from "./testing/onnx_builder.ts";

/** A core with "img@1" (image-only fake) and "txt@1" (prompt fake) loaded. */
async function fakeCore(modelRoot?: string) {
  const registry = new ScorerRegistry({
    factory: (source) =>
      Promise.resolve(
        source.kind === "txt"
          ? new FakeScorer({ kind: "text-fake", needsPrompts: true })
          : new FakeScorer({ kind: "img-fake" }),
      ),
    defaultBatching: { maxBatch: 4, maxQueueDelayMs: 1 },
    log: () => {},
  });
  const core = new RewardCore({ registry, limits: TEST_LIMITS, modelRoot });
  await core.loadScorer({ name: "img", version: "1", bundle: "", kind: "img" });
  await core.loadScorer({ name: "txt", version: "1", bundle: "", kind: "txt" });
  return core;
}

Deno.test("core: every malformed request fails with its code and a message naming the field", async () => {
  const core = await fakeCore();
  for (const c of BAD_SCORE_REQUESTS) {
    const error = await assertRejects(() => core.score(c.input), Error, c.message);
    assert(error instanceof ServiceError, `${c.name}: not a ServiceError: ${error}`);
    assertEquals(error.code, c.code, `${c.name}: ${error.message}`);
  }
  // Nothing was counted as a scorer request, and no lease leaked.
  for (const s of core.listScorers().scorers) assertEquals([s.requestCount, s.inFlight], [0, 0]);
});

Deno.test("core: shared prompt, per-image prompts, image-only scorers ignore prompts", async () => {
  const core = await fakeCore();
  const images = [rgb(2, 3, 10), rgb(5, 1, 200)];
  const shared = await core.score({ scorer: "txt", images, prompts: ["a cat"] });
  assertEquals(Array.from(shared.scores), images.map((im) => fakeScore(im, "a cat")));
  const each = await core.score({ scorer: "txt@1", images, prompts: ["a", "bcd"] });
  assertEquals(Array.from(each.scores), [fakeScore(images[0], "a"), fakeScore(images[1], "bcd")]);
  const imageOnly = await core.score({ scorer: "img", images, prompts: ["ignored"] });
  assertEquals(Array.from(imageOnly.scores), images.map((im) => fakeScore(im, undefined)));
  assertEquals([imageOnly.scorerName, imageOnly.version, imageOnly.batchSize], ["img", "1", 2]);
  assert(imageOnly.queueMs >= 0 && imageOnly.inferenceMs >= 0);
});

Deno.test("core: load needs a bundle or a kind, and bundles need a model root", async () => {
  const core = await fakeCore();
  await assertRejects(
    () => core.loadScorer({ name: "x", version: "1", bundle: "", kind: "" }),
    InvalidArgumentError,
    "bundle: empty, and no kind given",
  );
  await assertRejects(
    () => core.loadScorer({ name: "x", version: "1", bundle: "some/folder", kind: "" }),
    FailedPreconditionError,
    "no --model-root",
  );
});

Deno.test("core: bundles load from the model root through bundle.ts; escapes are refused", async () => {
  const root = await Deno.realPath(await Deno.makeTempDir({ prefix: "reward-core-root-" }));
  const outside = await Deno.realPath(await Deno.makeTempDir({ prefix: "reward-core-outside-" }));
  try {
    const manifest = (version: string) => ({
      format: 1,
      kind: "onnx",
      name: "lin",
      version,
      models: { model: { file: "model.onnx", feeds: { pixel_values: "pixel_values" }, output: "score" } },
      preprocessing: { type: "clip", size: 16 },
    });
    const onnx = buildLinearImageScorerOnnx({ weights: [1, 2, 3], bias: 0.5, size: 16 });
    await Deno.mkdir(join(root, "lin", "1"), { recursive: true });
    await Deno.writeTextFile(join(root, "lin", "1", "manifest.json"), JSON.stringify(manifest("1")));
    await Deno.writeFile(join(root, "lin", "1", "model.onnx"), onnx);
    // A bundle whose model file is a symlink out of the root.
    await Deno.writeFile(join(outside, "model.onnx"), onnx);
    await Deno.mkdir(join(root, "lin", "evil"), { recursive: true });
    await Deno.writeTextFile(join(root, "lin", "evil", "manifest.json"), JSON.stringify(manifest("evil")));
    await Deno.symlink(join(outside, "model.onnx"), join(root, "lin", "evil", "model.onnx"));

    const registry = new ScorerRegistry({
      factory: bundleScorerFactory({ modelRoot: root }),
      defaultBatching: { maxBatch: 4, maxQueueDelayMs: 1 },
      log: () => {},
    });
    const core = new RewardCore({ registry, limits: TEST_LIMITS, modelRoot: root });
    const status = await core.loadScorer({
      name: "lin",
      version: "1",
      bundle: "lin/1",
      kind: "",
      alias: "prod",
    });
    assertEquals([status.state, status.kind, status.bundlePath], ["READY", "onnx", join(root, "lin", "1")]);
    const dark = await core.score({ scorer: "prod", images: [rgb(8, 8, 0)], prompts: [] });
    const bright = await core.score({ scorer: "prod", images: [rgb(8, 8, 255)], prompts: [] });
    assert(
      bright.scores[0] > dark.scores[0],
      `brighter images score higher: ${dark.scores} ${bright.scores}`,
    );

    await assertRejects(
      () =>
        core.loadScorer({ name: "lin", version: "2", bundle: "../" + outside.split("/").pop(), kind: "" }),
      InvalidArgumentError,
      '".." segment',
    );
    await assertRejects(
      () => core.loadScorer({ name: "lin", version: "2", bundle: outside, kind: "" }),
      PermissionDeniedError,
      "outside the root folder",
    );
    await assertRejects(
      () => core.loadScorer({ name: "lin", version: "evil", bundle: "lin/evil", kind: "" }),
      PermissionDeniedError,
      "models.model.file",
    );
    await assertRejects(
      () => core.loadScorer({ name: "lin", version: "3", bundle: "lin/1", kind: "aesthetic" }),
      InvalidArgumentError,
      "holds a onnx scorer, not aesthetic",
    );
    await assertRejects(
      () => core.loadScorer({ name: "lin", version: "4", bundle: "lin/none", kind: "" }),
      NotFoundError,
      "does not exist",
    );
    // Failed loads are listed; the serving version is untouched.
    const states = core.listScorers().scorers.map((s) => `${s.version}:${s.state}`);
    assertEquals(states, ["1:READY", "evil:FAILED", "3:FAILED"]);
    assertEquals(core.listScorers().aliases, { prod: "lin@1" });
    await registry.closeAll();
  } finally {
    await Deno.remove(root, { recursive: true });
    await Deno.remove(outside, { recursive: true });
  }
});

Deno.test("core: the built-in jpeg scorers load by kind with no files", async () => {
  const registry = new ScorerRegistry({
    factory: bundleScorerFactory(),
    defaultBatching: { maxBatch: 4, maxQueueDelayMs: 1 },
    log: () => {},
  });
  const core = new RewardCore({ registry });
  await core.loadScorer({ name: "jpeg", version: "builtin", bundle: "", kind: "jpeg_incompressibility" });
  const flat = await core.score({ scorer: "jpeg", images: [rgb(32, 32, 90)], prompts: [] });
  const noise = rgb(32, 32);
  for (let i = 0; i < noise.data.length; i++) noise.data[i] = (i * 2654435761) >>> 24;
  const busy = await core.score({ scorer: "jpeg", images: [noise], prompts: [] });
  assert(busy.scores[0] > flat.scores[0], "a noisy image is less compressible than a flat one");
  await assertRejects(
    () => core.loadScorer({ name: "x", version: "1", bundle: "", kind: "aesthetic" }),
    InvalidArgumentError,
    "not a built-in kind",
  );
  await registry.closeAll();
});
