/**
 * A tiny service process for main_test.ts: RewardService whose Score sleeps `prompts[0]` ms (so a
 * test can keep a call in flight across SIGTERM) and echoes the image count.
 */
import { RewardService } from "../../../gen/rdpo/v1/reward_pb.ts";
import { runService } from "../main.ts";

await runService({
  name: "tiny",
  flags: { greeting: { type: "string", env: ["TINY_GREETING"], default: "hi" } },
  setup(server, flags) {
    server.addService(RewardService, {
      async score(request) {
        await new Promise((r) => setTimeout(r, Number(request.prompts[0] ?? 0)));
        return { scorerName: flags.greeting, batchSize: request.images.length };
      },
      loadScorer: () => ({}),
      unloadScorer: () => ({}),
      setAlias: () => ({}),
      listScorers: () => ({}),
    });
  },
});
