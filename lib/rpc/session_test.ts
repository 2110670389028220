/**
 * The Session stream end to end over loopback: same answers as unary, per-message errors naming the
 * field, middleware per inner method, fallback to unary on UNIMPLEMENTED, reopening after a restart.
 */
import { RewardService } from "../../gen/rdpo/v1/reward_pb.ts";
import * as errors from "../errors.ts";
import { assert, assertEquals } from "../testing/assert.ts";
import { createClient } from "./client.ts";
import { createServer, type RpcServer } from "./server.ts";
import { MAX_SESSION_IN_FLIGHT } from "./session.ts";
import { createSessionClient } from "./session_client.ts";
import { Code } from "./status.ts";
import { rpcFailure, startTestServer } from "./testing.ts";
import type { CallInfo, ImplOf } from "./types.ts";

const impl: ImplOf<typeof RewardService> = {
  score: (r) => {
    if (r.scorer === "bad") throw new errors.InvalidArgumentError("scorer", "no scorer named bad");
    return { scorerName: r.scorer, batchSize: r.images.length, scores: r.prompts.map((p) => p.length) };
  },
  loadScorer: () => ({}),
  unloadScorer: () => ({}),
  setAlias: () => ({}),
  listScorers: () => ({}),
};

Deno.test("session: answers equal the unary path's, middleware sees each inner method", async () => {
  const seen: string[] = [];
  const t = await startTestServer((s) => {
    s.onCall.push((call: CallInfo, next) => {
      seen.push(`${call.method}:${call.session ?? "-"}`);
      return next();
    });
    s.addService(RewardService, impl);
  });
  const unary = t.client(RewardService);
  const session = createSessionClient(RewardService, createClient(RewardService, t.address));
  try {
    const request = { scorer: "s", prompts: ["a", "bcd"], images: [{ width: 1, height: 1 }] };
    const viaUnary = await unary.score(request);
    let transport = "";
    let trailerMs = "";
    const viaSession = await session.score(request, {
      onTransport: (tr) => (transport = tr),
      onTrailer: (m) => (trailerMs = String(m.get("rdpo-server-ms")[0])),
    });
    assertEquals(viaSession, viaUnary);
    assertEquals(transport, "stream");
    assert(Number.isFinite(Number(trailerMs)), `server ms trailer: ${trailerMs}`);
    const many = await Promise.all([1, 2, 3, 4].map((n) => session.score({ scorer: `s${n}` })));
    assertEquals(many.map((r) => r.scorerName), ["s1", "s2", "s3", "s4"]);
    const failure = await rpcFailure(() => session.score({ scorer: "bad" }));
    assertEquals(failure.code, Code.INVALID_ARGUMENT);
    assert(failure.details.includes("scorer"), failure.details);
    assertEquals(session.sessionStats.opened, 1);
    assert(seen.includes("Score:message") && seen.includes("Session:carrier"), seen.join(","));
  } finally {
    session.close();
    await t.close();
  }
});

Deno.test("session: a message past its deadline fails DEADLINE_EXCEEDED on both sides, the stream goes on", async () => {
  let serverReason = "";
  const t = await startTestServer((s) =>
    s.addService(RewardService, {
      ...impl,
      score: async (r, ctx) => {
        if (r.scorer !== "slow") return { scorerName: r.scorer };
        // The server's own deadline (from the message's timeout_ms) aborts the handler.
        await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve, { once: true }));
        serverReason = (ctx.signal.reason as Error).name;
        return { scorerName: "late" };
      },
    })
  );
  const session = createSessionClient(RewardService, createClient(RewardService, t.address));
  try {
    const failure = await rpcFailure(() => session.score({ scorer: "slow" }, { timeoutMs: 30 }));
    assertEquals(failure.code, Code.DEADLINE_EXCEEDED);
    // Later calls with longer deadlines on the same stream are unaffected.
    const ok = await session.score({ scorer: "fast" }, { timeoutMs: 60_000 });
    assertEquals(ok.scorerName, "fast");
    while (serverReason === "") await new Promise((r) => setTimeout(r, 5));
    assertEquals(serverReason, new errors.DeadlineExceededError("x").name);
    assertEquals(session.sessionStats.opened, 1);
  } finally {
    session.close();
    await t.close();
  }
});

/** Raw Session frames through the generated bidi method: per-call errors name the field. */
Deno.test("session: zero/duplicate call_id and unset call answer INVALID_ARGUMENT naming the field", async () => {
  let release = () => {};
  const gate = new Promise<void>((r) => (release = r));
  const t = await startTestServer((s) =>
    s.addService(RewardService, {
      ...impl,
      score: async (r) => {
        if (r.scorer === "wait") await gate;
        return { scorerName: r.scorer };
      },
    })
  );
  const client = t.client(RewardService);
  try {
    const frames = async function* () {
      yield { callId: 0n, call: { case: "score" as const, value: { scorer: "x" } } };
      yield { callId: 5n };
      yield { callId: 7n, call: { case: "score" as const, value: { scorer: "wait" } } };
      yield { callId: 7n, call: { case: "score" as const, value: { scorer: "dup" } } };
      await new Promise((r) => setTimeout(r, 50));
      release();
    };
    const answers: { id: bigint; what: string }[] = [];
    for await (const m of client.session(frames())) {
      const what = m.result.case === "error"
        ? `${m.result.value.code}:${m.result.value.message.split(":")[0]}`
        : `ok:${m.result.case}`;
      answers.push({ id: m.callId, what });
    }
    const byId = (id: bigint) => answers.filter((a) => a.id === id).map((a) => a.what);
    assertEquals(byId(0n), [`${Code.INVALID_ARGUMENT}:call_id`]);
    assertEquals(byId(5n), [`${Code.INVALID_ARGUMENT}:call`]);
    assertEquals(byId(7n).sort(), [`${Code.INVALID_ARGUMENT}:call_id`, "ok:score"].sort());
  } finally {
    await t.close();
  }
});

Deno.test("session: a server without Session (UNIMPLEMENTED) is served by the unary methods", async () => {
  const t = await startTestServer((s) =>
    s.addService(RewardService, {
      ...impl,
      session: () => {
        throw new errors.UnimplementedError("no sessions here");
      },
    })
  );
  const session = createSessionClient(RewardService, createClient(RewardService, t.address));
  try {
    const r = await session.score({ scorer: "fallback" });
    assertEquals(r.scorerName, "fallback");
    let transport = "";
    await session.score({ scorer: "again" }, { onTransport: (tr) => (transport = tr) });
    assertEquals(transport, "unary");
  } finally {
    session.close();
    await t.close();
  }
});

Deno.test("session: a server restart fails calls with UNAVAILABLE, the next call reopens the stream", async () => {
  const start = async (port: number): Promise<{ server: RpcServer; port: number }> => {
    const server = createServer();
    server.addService(RewardService, impl);
    const bound = await server.listen("127.0.0.1", port);
    return { server, port: bound.port };
  };
  let s = await start(0);
  const session = createSessionClient(RewardService, createClient(RewardService, `127.0.0.1:${s.port}`));
  try {
    assertEquals((await session.score({ scorer: "before" })).scorerName, "before");
    s.server.forceShutdown();
    s = await start(s.port);
    // The first call after the restart may still meet the dead stream; a retry must succeed.
    let answer = "";
    for (let attempt = 0; attempt < 5 && answer === ""; attempt++) {
      try {
        answer = (await session.score({ scorer: "after" }, { timeoutMs: 5000 })).scorerName;
      } catch (e) {
        assertEquals((e as { code: number }).code, Code.UNAVAILABLE);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    assertEquals(answer, "after");
    assert(session.sessionStats.opened >= 2, `opened ${session.sessionStats.opened}`);
  } finally {
    session.close();
    s.server.forceShutdown();
  }
});

Deno.test("session: more calls in flight than the cap answer RESOURCE_EXHAUSTED; shutdown finishes in-flight, new ids UNAVAILABLE", async () => {
  let release = () => {};
  const gate = new Promise<void>((r) => (release = r));
  let started = 0;
  const t = await startTestServer((s) =>
    s.addService(RewardService, {
      ...impl,
      score: async (r) => {
        started++;
        await gate;
        return { scorerName: r.scorer };
      },
    })
  );
  const client = t.client(RewardService);
  try {
    const total = MAX_SESSION_IN_FLIGHT + 3;
    const queue: unknown[] = [];
    const codes = new Map<bigint, string>();
    const frames = async function* () {
      for (let i = 1; i <= total; i++) {
        yield { callId: BigInt(i), call: { case: "score", value: { scorer: `${i}` } } };
      }
      // Wait until the server has started the calls, then begin shutdown and send one more.
      while (started < MAX_SESSION_IN_FLIGHT) await new Promise((r) => setTimeout(r, 5));
      const stopping = t.server.shutdown(5000);
      queue.push(stopping);
      yield { callId: 1000n, call: { case: "score", value: { scorer: "late" } } };
      await new Promise((r) => setTimeout(r, 30));
      release();
      // Like the session client: the request side stays open until every answer is in (a client
      // that half-closes first races the server's connection close on Deno; see session.ts).
      while (codes.size < total + 1) await new Promise((r) => setTimeout(r, 5));
    };
    for await (const m of client.session(frames() as never)) {
      codes.set(m.callId, m.result.case === "error" ? `err${m.result.value.code}` : "ok");
    }
    const counts = (what: string) => [...codes.values()].filter((c) => c === what).length;
    assertEquals(counts("ok"), MAX_SESSION_IN_FLIGHT, "the calls in flight finished during shutdown");
    assertEquals(counts(`err${Code.RESOURCE_EXHAUSTED}`), 3);
    assertEquals(codes.get(1000n), `err${Code.UNAVAILABLE}`);
    assertEquals((await queue[0] as { drained: boolean }).drained, true);
  } finally {
    release();
    await t.close();
  }
});
