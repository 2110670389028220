import { assert, assertEquals } from "../../testing/assert.ts";
import { RewardService } from "../../../gen/rdpo/v1/reward_pb.ts";
import { startReward } from "../../../services/reward/main.ts";
import { createClient } from "../client.ts";

const image = { width: 8, height: 8, channels: 3, data: new Uint8Array(8 * 8 * 3).fill(90) };

Deno.test("supervised transport: a killed gRPC front is restarted on the same port, the models stay", async () => {
  const reward = await startReward(["--host", "127.0.0.1", "--port", "0", "--transport", "supervised"]);
  try {
    const transport = reward.service.transport!;
    assert(transport, "no supervised transport");
    const client = createClient(RewardService, reward.address);
    const before = await client.score({ scorer: "colorfulness", images: [image] });
    client.close();
    Deno.kill(transport.pid, "SIGKILL");
    for (let i = 0; i < 200 && transport.restarts === 0; i++) await new Promise((r) => setTimeout(r, 50));
    await transport.ready();
    assertEquals(transport.restarts, 1);
    assertEquals(transport.deaths, ["signal SIGKILL"]);
    const again = createClient(RewardService, reward.address);
    try {
      const after = await again.score({ scorer: "colorfulness", images: [image] }, { timeoutMs: 20_000 });
      assertEquals(after.scores, before.scores);
    } finally {
      again.close();
    }
  } finally {
    await reward.stop();
  }
});
