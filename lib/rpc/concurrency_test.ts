import { Health } from "../../gen/grpc/health/v1/health_pb.ts";
import { RewardService } from "../../gen/rdpo/v1/reward_pb.ts";
import { assert, assertEquals } from "../testing/assert.ts";
import { concurrencyLimit } from "./concurrency.ts";
import { Code } from "./status.ts";
import { deferred, rpcFailure, startTestServer } from "./testing.ts";

Deno.test("concurrency limit: the call over the per-method limit is RESOURCE_EXHAUSTED naming it", async () => {
  const limiter = concurrencyLimit(2);
  const release = deferred();
  const t = await startTestServer((server) => {
    server.onCall.push(limiter.middleware);
    server.addService(RewardService, {
      score: async () => {
        await release.promise;
        return { scores: [1] };
      },
      loadScorer: () => ({}),
      unloadScorer: () => ({}),
      setAlias: () => ({}),
      listScorers: () => ({}),
    });
  });
  try {
    const client = t.client(RewardService);
    const running = [client.score({}), client.score({})];
    for (let i = 0; i < 100 && limiter.running("/rdpo.v1.RewardService/Score") < 2; i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    const refused = await rpcFailure(() => client.score({}));
    assertEquals(refused.code, Code.RESOURCE_EXHAUSTED);
    assert(refused.details.includes("the limit is 2 per method (--max-concurrent-calls)"), refused.details);
    // Other methods and health are not held back by a saturated one.
    assertEquals((await client.listScorers({})).scorers, []);
    assertEquals((await t.client(Health).check({})).status, 1);
    release.resolve();
    assertEquals((await Promise.all(running)).map((r) => r.scores), [[1], [1]]);
    assertEquals(limiter.running("/rdpo.v1.RewardService/Score"), 0);
    await client.score({}); // the slot is free again
    assertEquals(limiter.refused, 1);
  } finally {
    release.resolve();
    await t.close();
  }
});
