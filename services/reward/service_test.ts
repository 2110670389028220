import { assert, assertEquals } from "../../lib/testing/assert.ts";
import { Code, codeName } from "../../lib/rpc/status.ts";
import { rpcFailure, startTestServer } from "../../lib/rpc/testing.ts";
import { RewardService, ScorerState } from "../../gen/rdpo/v1/reward_pb.ts";
import { BAD_SCORE_REQUESTS, rgb, TEST_LIMITS } from "./bad_score_requests.ts";
import { RewardCore } from "./core.ts";
import { fakeScore, FakeScorer } from "./fake_scorer.ts";
import { ScorerRegistry } from "./registry.ts";
import { addRewardService } from "./service.ts";

const TOKEN = "s3cret-token";

async function serve(adminToken?: string) {
  const registry = new ScorerRegistry({
    factory: (source) => {
      if (source.kind === "broken") return Promise.resolve(new FakeScorer({ failAll: "weights are NaN" }));
      return Promise.resolve(
        source.kind === "txt"
          ? new FakeScorer({ kind: "text-fake", needsPrompts: true })
          : new FakeScorer({ kind: "img-fake", offset: Number(source.kind.replace(/\D/g, "")) || 0 }),
      );
    },
    defaultBatching: { maxBatch: 4, maxQueueDelayMs: 1 },
    log: () => {},
  });
  const core = new RewardCore({ registry, limits: TEST_LIMITS });
  await core.loadScorer({ name: "img", version: "1", bundle: "", kind: "img" });
  await core.loadScorer({ name: "txt", version: "1", bundle: "", kind: "txt" });
  const server = await startTestServer((s) => addRewardService(s, core, { adminToken }));
  const client = server.client(RewardService);
  return { server, client, registry };
}

const bearer = (token: string) => ({ metadata: { authorization: `Bearer ${token}` } });

Deno.test("service: Score over gRPC returns per-image scores, the version and timings", async () => {
  const { server, client } = await serve();
  try {
    const images = [rgb(3, 2, 40), rgb(2, 2, 250)];
    const res = await client.score({ scorer: "txt", images, prompts: ["a red car"] });
    assertEquals(res.scores, images.map((im) => fakeScore(im, "a red car")));
    assertEquals([res.scorerName, res.version, res.batchSize], ["txt", "1", 2]);
    assert(res.queueMs >= 0 && res.inferenceMs >= 0);
  } finally {
    await server.close();
  }
});

Deno.test("service: malformed Score requests map to INVALID_ARGUMENT / NOT_FOUND / RESOURCE_EXHAUSTED", async () => {
  const { server, client } = await serve();
  try {
    for (const c of BAD_SCORE_REQUESTS) {
      const error = await rpcFailure(() => client.score(c.input));
      assertEquals(codeName(error.code), c.code, `${c.name}: ${error.details}`);
      assert(error.details.includes(c.message), `${c.name}: "${error.details}" lacks "${c.message}"`);
    }
  } finally {
    await server.close();
  }
});

Deno.test("service: admin RPCs need the bearer token when one is configured; Score and List stay open", async () => {
  const { server, client } = await serve(TOKEN);
  try {
    const load = { name: "img", version: "2", kind: "img2", alias: "prod" };
    const missing = await rpcFailure(() => client.loadScorer(load));
    assertEquals(missing.code, Code.UNAUTHENTICATED);
    assert(missing.details.includes("authorization: Bearer"), missing.details);
    const wrong = await rpcFailure(() => client.loadScorer(load, bearer("guess")));
    assertEquals(wrong.code, Code.PERMISSION_DENIED);
    const basic = await rpcFailure(() =>
      client.setAlias({ alias: "a", name: "img", version: "1" }, {
        metadata: { authorization: `Basic ${TOKEN}` },
      })
    );
    assertEquals(basic.code, Code.UNAUTHENTICATED);
    assertEquals(
      (await rpcFailure(() => client.unloadScorer({ name: "img", version: "1" }))).code,
      Code.UNAUTHENTICATED,
    );

    const loaded = await client.loadScorer(load, bearer(TOKEN));
    assertEquals(loaded.scorer?.state, ScorerState.READY);
    assertEquals(loaded.scorer?.batching?.maxBatch, 4);
    const scored = await client.score({ scorer: "prod", images: [rgb(2, 2, 0)] });
    assertEquals([scored.version, scored.scores[0]], ["2", 2]);
    assertEquals(
      (await client.setAlias({ alias: "prod", name: "img", version: "1" }, bearer(TOKEN))).previous,
      "img@2",
    );
    assertEquals(
      (await client.unloadScorer({ name: "img", version: "2" }, bearer(TOKEN))).drainedRequests,
      0,
    );
    const list = await client.listScorers({});
    assertEquals(list.aliases, { prod: "img@1" });
    assertEquals(list.scorers.map((s) => `${s.name}@${s.version}`), ["img@1", "txt@1"]);
    assert(list.sessionStream, "ListScorers advertises Session");
  } finally {
    await server.close();
  }
});

Deno.test("service: management errors carry their codes; a failed load is listed as FAILED", async () => {
  const { server, client } = await serve();
  try {
    const failed = await rpcFailure(() =>
      client.loadScorer({ name: "img", version: "9", kind: "broken", alias: "img" })
    );
    assertEquals(failed.code, Code.FAILED_PRECONDITION);
    assert(failed.details.includes("warm-up of img@9 failed: weights are NaN"), failed.details);
    const again = await rpcFailure(() => client.loadScorer({ name: "img", version: "1", kind: "img" }));
    assertEquals(again.code, Code.ALREADY_EXISTS);
    const bad = await rpcFailure(() =>
      client.loadScorer({ name: "img", version: "3", kind: "img", batching: { maxBatch: 1_000_000 } })
    );
    assertEquals([bad.code, bad.details.startsWith("batching.max_batch")], [Code.INVALID_ARGUMENT, true]);
    assertEquals(
      (await rpcFailure(() => client.unloadScorer({ name: "x", version: "1" }))).code,
      Code.NOT_FOUND,
    );
    assertEquals(
      (await rpcFailure(() => client.setAlias({ alias: "p", name: "img", version: "9" }))).code,
      Code.FAILED_PRECONDITION,
    );
    const list = await client.listScorers({});
    const entry = list.scorers.find((s) => s.version === "9")!;
    assertEquals(entry.state, ScorerState.FAILED);
    assert(entry.error.includes("weights are NaN"));
    // The serving version still answers under its name (the failed load's alias was not set).
    assertEquals(list.aliases, {});
    assertEquals((await client.score({ scorer: "img", images: [rgb(1, 1, 0)] })).version, "1");
    assertEquals(list.scorers.find((s) => s.version === "1")!.requestCount, 0n);
  } finally {
    await server.close();
  }
});
