/**
 * Load test of the runtime model swap through real gRPC on loopback: 32 clients keep scoring
 * through the alias "lin" while an operator swaps it 20 times (LoadScorer new version, SetAlias,
 * UnloadScorer old). Requirements (INFRA.md "Runtime model swap"): ZERO failed requests, and every
 * response comes from a version that was the alias target at some moment during that request.
 * Each version is a tiny ONNX model (services/reward/testing/onnx_builder.ts) whose score is its
 * version number, so a response also proves which model computed it.
 */
import { assert, assertEquals } from "../lib/testing/assert.ts";
import { createClient } from "../lib/rpc/client.ts";
import { RewardService } from "../gen/rdpo/v1/reward_pb.ts";
import { join } from "node:path";
import { startReward } from "../services/reward/main.ts";
import { buildLinearImageScorerOnnx } from "../services/reward/testing/onnx_builder.ts";

const SWAPS = 20;
const CLIENTS = 32;
const TOKEN = "load-test-token";
// Batches are never full (MAX_BATCH > CLIENTS x images), so every request waits QUEUE_DELAY_MS in
// its version's batcher: requests are still in flight on the old version when UnloadScorer
// arrives, and the drain path is exercised (asserted below), not skipped.
const MAX_BATCH = 128;
const QUEUE_DELAY_MS = 100;
const MODEL_SIDE = 16;
const IMAGE_SIDE = 12;

async function writeVersion(root: string, version: number): Promise<void> {
  const dir = join(root, "lin", String(version));
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeFile(
    join(dir, "model.onnx"),
    buildLinearImageScorerOnnx({ weights: [0, 0, 0], bias: version, size: MODEL_SIDE }),
  );
  await Deno.writeTextFile(
    join(dir, "manifest.json"),
    JSON.stringify({
      format: 1,
      kind: "onnx",
      name: "lin",
      version: String(version),
      models: { model: { file: "model.onnx", feeds: { pixel_values: "pixel_values" }, output: "score" } },
      preprocessing: { type: "clip", size: MODEL_SIDE },
    }),
  );
}

interface Observation {
  start: number;
  end: number;
  version: number;
  scores: number[];
}

Deno.test("reward swap under load: 20 alias swaps while 32 clients score, zero failures", async () => {
  const root = await Deno.realPath(await Deno.makeTempDir({ prefix: "reward-swap-" }));
  for (let v = 1; v <= SWAPS + 1; v++) await writeVersion(root, v);
  const service = await startReward(
    [
      "--port",
      "0",
      "--model-root",
      root,
      "--admin-token",
      TOKEN,
      "--no-builtins",
      "--max-batch",
      String(MAX_BATCH),
      "--max-queue-delay-ms",
      String(QUEUE_DELAY_MS),
      "--drain-timeout-ms",
      "20000",
      "--preload",
      "lin@1=lin/1:lin",
    ],
    () => undefined,
    () => {},
  );
  const admin = createClient(RewardService, service.address, { defaultTimeoutMs: 30_000 });
  const clients = Array.from({ length: CLIENTS }, () => createClient(RewardService, service.address));
  const auth = { metadata: { authorization: `Bearer ${TOKEN}` } };
  // aliasSet[v] = [time the SetAlias call pointing at v started, time it returned].
  const aliasSet = new Map<number, [number, number]>([[1, [0, 0]]]);
  const observations: Observation[] = [];
  const failures: string[] = [];
  let swapping = true;
  let drained = 0;
  try {
    const image = (fill: number) => ({
      width: IMAGE_SIDE,
      height: IMAGE_SIDE,
      channels: 3,
      data: new Uint8Array(IMAGE_SIDE * IMAGE_SIDE * 3).fill(fill),
    });
    const load = clients.map(async (client, c) => {
      let i = 0;
      while (swapping) {
        const start = performance.now();
        try {
          const images = i++ % 3 === 0 ? [image(c), image(255 - c)] : [image(c)];
          const res = await client.score({ scorer: "lin", images }, { timeoutMs: 30_000 });
          observations.push({
            start,
            end: performance.now(),
            version: Number(res.version),
            scores: res.scores,
          });
        } catch (error) {
          failures.push(`client ${c}: ${(error as Error).message}`);
        }
      }
    });
    for (let v = 2; v <= SWAPS + 1; v++) {
      const loaded = await admin.loadScorer({ name: "lin", version: String(v), bundle: `lin/${v}` }, auth);
      assertEquals(loaded.scorer?.version, String(v));
      const t0 = performance.now();
      const previous = await admin.setAlias({ alias: "lin", name: "lin", version: String(v) }, auth);
      aliasSet.set(v, [t0, performance.now()]);
      assertEquals(previous.previous, `lin@${v - 1}`);
      drained += (await admin.unloadScorer({ name: "lin", version: String(v - 1) }, auth)).drainedRequests;
    }
    // Let the clients run a little on the last version, then stop them.
    await new Promise((r) => setTimeout(r, 50));
    swapping = false;
    await Promise.all(load);

    assertEquals(failures, [], `failed requests:\n${failures.slice(0, 10).join("\n")}`);
    assert(observations.length >= SWAPS * 4, `only ${observations.length} requests completed`);
    assert(drained > 0, "no unload had requests to drain: the test did not exercise the swap under load");
    const versionsSeen = new Set(observations.map((o) => o.version));
    assert(versionsSeen.size >= SWAPS / 2, `requests saw only versions ${[...versionsSeen]}`);
    for (const o of observations) {
      // The score proves which model ran; the version must have been the alias target at some
      // moment between the request's start and end: from the start of its SetAlias call until
      // the next version's SetAlias call returned.
      assert(o.scores.every((s) => s === o.version), `version ${o.version} answered ${o.scores}`);
      const [becameTarget] = aliasSet.get(o.version)!;
      const stoppedBeingTarget = aliasSet.get(o.version + 1)?.[1] ?? Infinity;
      assert(
        becameTarget <= o.end && o.start <= stoppedBeingTarget,
        `request [${o.start}, ${o.end}] answered by version ${o.version}, alias target during ` +
          `[${becameTarget}, ${stoppedBeingTarget}]`,
      );
    }
    const list = await admin.listScorers({});
    assertEquals(list.scorers.map((s) => `${s.name}@${s.version}:${s.state}`), [`lin@${SWAPS + 1}:2`]);
    assertEquals(list.aliases, { lin: `lin@${SWAPS + 1}` });
    console.log(
      `swap load test: ${observations.length} requests over ${SWAPS} swaps, ${versionsSeen.size} versions ` +
        `answered, ${drained} requests drained by unloads, 0 failures`,
    );
  } finally {
    swapping = false;
    for (const c of clients) c.close();
    admin.close();
    await service.stop();
    await Deno.remove(root, { recursive: true });
  }
});
