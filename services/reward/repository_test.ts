import { assert, assertEquals } from "../../lib/testing/assert.ts";
import { join } from "node:path";
import { RewardCore } from "./core.ts";
import { ScorerRegistry } from "./registry.ts";
import { ModelRepositoryPoller } from "./repository.ts";
import { bundleScorerFactory } from "./scorer_factory.ts";
import { buildLinearImageScorerOnnx } from "./testing/onnx_builder.ts";
import { rgb } from "./bad_score_requests.ts";

/** Writes `<root>/<name>/<version>/` with a tiny linear ONNX scorer whose bias is `bias`. */
async function writeVersion(root: string, name: string, version: string, bias: number) {
  const dir = join(root, name, version);
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeFile(
    dir + "/model.onnx",
    buildLinearImageScorerOnnx({ weights: [0, 0, 0], bias, size: 8 }),
  );
  await Deno.writeTextFile(
    dir + "/manifest.json",
    JSON.stringify({
      format: 1,
      kind: "onnx",
      name,
      version,
      models: { model: { file: "model.onnx", feeds: { pixel_values: "pixel_values" }, output: "score" } },
      preprocessing: { type: "clip", size: 8 },
    }),
  );
}

async function setup() {
  const root = await Deno.realPath(await Deno.makeTempDir({ prefix: "reward-repo-" }));
  const logs: string[] = [];
  const registry = new ScorerRegistry({
    factory: bundleScorerFactory({ modelRoot: root }),
    defaultBatching: { maxBatch: 4, maxQueueDelayMs: 1 },
    log: () => {},
  });
  const poller = new ModelRepositoryPoller({
    registry,
    root,
    intervalMs: 10,
    drainTimeoutMs: 1000,
    log: (level, message) => logs.push(`${level}: ${message}`),
  });
  const core = new RewardCore({ registry, modelRoot: root });
  const scoreOf = async (ref: string) => {
    const r = await core.score({ scorer: ref, images: [rgb(4, 4)], prompts: [] });
    return { version: r.version, score: Math.round(r.scores[0] * 1000) / 1000 };
  };
  const cleanup = async () => {
    await poller.stop();
    await registry.closeAll();
    await Deno.remove(root, { recursive: true });
  };
  return { root, registry, poller, scoreOf, logs, cleanup };
}

Deno.test("repository: new version folders are loaded, the alias moves, the old version is unloaded", async () => {
  const t = await setup();
  try {
    await writeVersion(t.root, "lin", "1", 1);
    await Deno.mkdir(join(t.root, "not-a-bundle", "1"), { recursive: true }); // no manifest: ignored
    assertEquals(await t.poller.pollOnce(), { loaded: ["lin@1"], unloaded: [], failed: [] });
    assertEquals(await t.scoreOf("lin"), { version: "1", score: 1 });
    assertEquals(t.registry.aliases().get("lin"), "lin@1");
    assertEquals(await t.poller.pollOnce(), { loaded: [], unloaded: [], failed: [] });

    await writeVersion(t.root, "lin", "2", 2);
    assertEquals(await t.poller.pollOnce(), { loaded: ["lin@2"], unloaded: ["lin@1"], failed: [] });
    assertEquals(await t.scoreOf("lin"), { version: "2", score: 2 });

    // A broken version is reported once, not retried while unchanged; v2 keeps serving.
    await Deno.mkdir(join(t.root, "lin", "3"));
    await Deno.writeTextFile(join(t.root, "lin", "3", "manifest.json"), "{ not json");
    assertEquals(await t.poller.pollOnce(), { loaded: [], unloaded: [], failed: ["lin@3"] });
    assertEquals(await t.poller.pollOnce(), { loaded: [], unloaded: [], failed: [] });
    assertEquals(await t.scoreOf("lin"), { version: "2", score: 2 });
    assert(t.logs.some((l) => l.startsWith("error:") && l.includes("lin@3") && l.includes("kept serving 2")));

    // Natural order: 10 is newer than 3 and 2.
    await writeVersion(t.root, "lin", "10", 10);
    assertEquals(await t.poller.pollOnce(), { loaded: ["lin@10"], unloaded: ["lin@2"], failed: [] });
    assertEquals(await t.scoreOf("lin"), { version: "10", score: 10 });

    // Removing folders rolls back to the latest remaining one; removing all stops serving.
    await Deno.remove(join(t.root, "lin", "10"), { recursive: true });
    await Deno.remove(join(t.root, "lin", "3"), { recursive: true });
    assertEquals(await t.poller.pollOnce(), { loaded: ["lin@2"], unloaded: ["lin@10"], failed: [] });
    await Deno.remove(join(t.root, "lin"), { recursive: true });
    assertEquals(await t.poller.pollOnce(), { loaded: [], unloaded: ["lin@2"], failed: [] });
    assertEquals(t.registry.list(), { scorers: [], aliases: {} });
  } finally {
    await t.cleanup();
  }
});

Deno.test("repository: start() polls on its interval until stop()", async () => {
  const t = await setup();
  try {
    await writeVersion(t.root, "lin", "1", 1);
    t.poller.start();
    for (let i = 0; i < 200 && t.poller.serving.get("lin") !== "1"; i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assertEquals(t.poller.serving.get("lin"), "1");
    await writeVersion(t.root, "lin", "2", 2);
    for (let i = 0; i < 200 && t.poller.serving.get("lin") !== "2"; i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assertEquals(await t.scoreOf("lin"), { version: "2", score: 2 });
    await t.poller.stop();
    await writeVersion(t.root, "lin", "3", 3);
    await new Promise((r) => setTimeout(r, 50));
    assertEquals(t.poller.serving.get("lin"), "2");
  } finally {
    await t.cleanup();
  }
});
