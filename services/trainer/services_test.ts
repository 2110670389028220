import { toBinary } from "@bufbuild/protobuf";
import { assert, assertEquals } from "../../lib/testing/assert.ts";
import { startTestServer } from "../../lib/rpc/testing.ts";
import { ScoreRequestSchema } from "../../gen/rdpo/v1/reward_pb.ts";
import { encodeImage } from "../../lib/tensor/codec.ts";
import { RewardCore } from "../reward/core.ts";
import { fakeScore, FakeScorer } from "../reward/fake_scorer.ts";
import { ScorerRegistry } from "../reward/registry.ts";
import { addRewardService } from "../reward/service.ts";
import { parseConfig } from "./config.ts";
import { connectServices } from "./services.ts";
import { scoreGroups, scoreImages } from "./trajectory.ts";

async function rewardServer() {
  const registry = new ScorerRegistry({
    factory: (source) =>
      Promise.resolve(new FakeScorer({ kind: "img-fake", offset: Number(source.kind.replace(/\D/g, "")) })),
    defaultBatching: { maxBatch: 64, maxQueueDelayMs: 0 },
    log: () => {},
  });
  const core = new RewardCore({ registry });
  await core.loadScorer({ name: "a", version: "1", bundle: "", kind: "k1" });
  await core.loadScorer({ name: "b", version: "1", bundle: "", kind: "k2" });
  return { registry, server: await startTestServer((s) => addRewardService(s, core)) };
}

const image = (v: number) => {
  const data = new Uint8Array(4 * 3 * 3).fill(v);
  return { proto: encodeImage(4, 3, 3, data), rgb: { width: 4, height: 3, data } };
};

Deno.test("scoreGroups: one Score call per scorer for several groups, the same rewards as separate calls", async () => {
  const { registry, server } = await rewardServer();
  const config = parseConfig(
    // Unary calls: the byte counts below are the bare requests (a Session frame adds its call id).
    `scorers: [{name: a, weight: 1}, {name: b, weight: 0.5}]\nservices: {reward: "${server.address}"}\n` +
      "rpc: {session_stream: false}\n",
  );
  const services = connectServices(config);
  try {
    const cands = [10, 20, 30, 40].map(image), parents = [50, 60].map(image);
    const candPrompts = ["x", "x", "yy", "yy"], parentPrompts = ["x", "yy"];
    const ctx = { config, services };
    services.clock.take();
    const [qc, qp] = await scoreGroups(ctx, [
      { images: cands.map((c) => c.proto), prompts: candPrompts },
      { images: parents.map((c) => c.proto), prompts: parentPrompts },
    ]);
    const together = services.clock.take();
    assertEquals(together.calls, 2, "one call per scorer");
    const sepC = await scoreImages(ctx, cands.map((c) => c.proto), candPrompts);
    const sepP = await scoreImages(ctx, parents.map((c) => c.proto), parentPrompts);
    assertEquals(services.clock.take().calls, 4);
    assertEquals(qc, sepC);
    assertEquals(qp, sepP);
    // Weighted sum of the two fakes (offsets 1 and 2; image scorers, so prompts do not count).
    const want = (im: { rgb: { width: number; height: number; data: Uint8Array } }) =>
      fakeScore(im.rgb, undefined, 1) + 0.5 * fakeScore(im.rgb, undefined, 2);
    qc.forEach((v, i) => assert(Math.abs(v - want(cands[i])) < 1e-9, `candidate ${i}`));
    // The clock counts the encoded request bytes exactly.
    const req = (scorer: string) =>
      toBinary(
        ScoreRequestSchema,
        {
          $typeName: "rdpo.v1.ScoreRequest",
          scorer,
          images: [...cands, ...parents].map((c) => c.proto),
          prompts: [...candPrompts, ...parentPrompts],
        } as never,
      ).length;
    assertEquals(together.bytesSent, req("a") + req("b"));
    assert(together.bytesReceived > 0, "response bytes counted");
    // The per-RPC breakdown adds up to the totals, and its measured parts fit in the wire time.
    const score = together.byRpc.score;
    assertEquals(Object.keys(together.byRpc), ["score"]);
    assertEquals(score.calls, 2);
    assertEquals(score.bytesSent, together.bytesSent);
    assertEquals(score.bytesReceived, together.bytesReceived);
    assert(
      Math.abs(score.wallMs - together.totalMs) < 1e-9 && Math.abs(score.serverMs - together.serverMs) < 1e-9,
    );
    assert(
      score.encodeMs > 0 && score.decodeMs > 0 && score.serverPreMs > 0,
      "codec and server decode timed",
    );
    assert(
      score.encodeMs + score.decodeMs + score.serverPreMs <= score.wireMs + 1e-6,
      `parts ${JSON.stringify(score)} within the wire time`,
    );
  } finally {
    services.close();
    await server.close();
    await registry.closeAll();
  }
});

Deno.test("services: by default the calls go as Session messages, same rewards, counted by transport", async () => {
  const { registry, server } = await rewardServer();
  const address = `services: {reward: "${server.address}"}\n`;
  const scorers = "scorers: [{name: a, weight: 1}, {name: b, weight: 0.5}]\n";
  const viaStream = connectServices(parseConfig(scorers + address));
  const viaUnary = connectServices(parseConfig(scorers + address + "rpc: {session_stream: false}\n"));
  try {
    const images = [10, 20, 30].map(image).map((c) => c.proto);
    const prompts = ["x", "y", "z"];
    const a = await scoreImages(
      { config: parseConfig(scorers + address), services: viaStream },
      images,
      prompts,
    );
    const b = await scoreImages(
      { config: parseConfig(scorers + address), services: viaUnary },
      images,
      prompts,
    );
    assertEquals(a, b);
    const [s, u] = [viaStream.clock.take(), viaUnary.clock.take()];
    assertEquals([s.calls, s.streamCalls, s.unaryCalls], [2, 2, 0]);
    assertEquals([u.calls, u.streamCalls, u.unaryCalls], [2, 0, 2]);
    // A frame is the request plus its call id (and the response the same plus call id and timings).
    assert(
      s.bytesSent > u.bytesSent && s.bytesSent - u.bytesSent <= 2 * 16,
      `${s.bytesSent} vs ${u.bytesSent}`,
    );
    assert(s.serverMs > 0, "server time from the frame's server_ms");
  } finally {
    viaStream.close();
    viaUnary.close();
    await server.close();
    await registry.closeAll();
  }
});
