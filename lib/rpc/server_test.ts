/**
 * The generic adapter end to end over loopback: real grpc-js servers on 127.0.0.1:0 in-process,
 * fake RewardService / TrainerService handlers, our generic client.
 */
import { create } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { HealthCheckResponse_ServingStatus as Serving } from "../../gen/grpc/health/v1/health_pb.ts";
import { Health } from "../../gen/grpc/health/v1/health_pb.ts";
import { RewardService, type ScoreRequest, ScoreRequestSchema } from "../../gen/rdpo/v1/reward_pb.ts";
import { RunState, TrainerService } from "../../gen/rdpo/v1/trainer_pb.ts";
import * as errors from "../errors.ts";
import { assert, assertEquals, assertRejects } from "../testing/assert.ts";
import type { CallInfo } from "./types.ts";
import { Code, codeName, RpcError } from "./status.ts";
import { createClient, waitForReady } from "./client.ts";
import type { CallContext, ImplOf } from "./types.ts";
import { deferred, rpcFailure, startTestServer } from "./testing.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Resolves after `ms` or rejects with the signal's reason when it aborts first. */
function sleepUnlessAborted(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(t);
      reject(signal.reason);
    }, { once: true });
  });
}

const ERROR_CASES: [string, () => Error, number][] = [
  [
    "InvalidArgumentError",
    () => new errors.InvalidArgumentError("images[0].data", "too short"),
    Code.INVALID_ARGUMENT,
  ],
  ["NotFoundError", () => new errors.NotFoundError("scorer: no scorer named x"), Code.NOT_FOUND],
  ["AlreadyExistsError", () => new errors.AlreadyExistsError("exists"), Code.ALREADY_EXISTS],
  [
    "FailedPreconditionError",
    () => new errors.FailedPreconditionError("step 3 != 4"),
    Code.FAILED_PRECONDITION,
  ],
  ["ResourceExhaustedError", () => new errors.ResourceExhaustedError("batch > 64"), Code.RESOURCE_EXHAUSTED],
  ["PermissionDeniedError", () => new errors.PermissionDeniedError("admin only"), Code.PERMISSION_DENIED],
  ["UnauthenticatedError", () => new errors.UnauthenticatedError("no token"), Code.UNAUTHENTICATED],
  ["UnavailableError", () => new errors.UnavailableError("loading"), Code.UNAVAILABLE],
  ["AbortedError", () => new errors.AbortedError("conflict"), Code.ABORTED],
  ["DeadlineExceededError", () => new errors.DeadlineExceededError("inner deadline"), Code.DEADLINE_EXCEEDED],
  ["CancelledError", () => new errors.CancelledError("cancelled inside"), Code.CANCELLED],
  ["UnimplementedError", () => new errors.UnimplementedError("not yet"), Code.UNIMPLEMENTED],
  ["RpcError", () => new RpcError(Code.DATA_LOSS, "downstream lost data"), Code.DATA_LOSS],
  ["TypeError", () => new TypeError("x is undefined (secret path /etc/key)"), Code.INTERNAL],
];

/**
 * Fake reward service. `scorer` picks the behaviour: "echo" scores each image by its byte count,
 * "slow:<ms>" waits (abortable), "throw:<Class>" throws from ERROR_CASES, "meta" echoes metadata.
 */
function fakeReward(
  observed: { signals: AbortSignal[]; contexts: CallContext[] } = { signals: [], contexts: [] },
) {
  const impl: ImplOf<typeof RewardService> = {
    async score(request: ScoreRequest, ctx) {
      observed.signals.push(ctx.signal);
      observed.contexts.push(ctx);
      const [kind, arg] = request.scorer.split(":");
      switch (kind) {
        case "echo":
          return {
            scores: request.images.map((im) => im.data.length),
            scorerName: "echo",
            batchSize: request.images.length,
          };
        case "slow":
          await sleepUnlessAborted(Number(arg), ctx.signal);
          return { scorerName: "slow" };
        case "throw": {
          const found = ERROR_CASES.find(([name]) => name === arg);
          throw found ? found[1]() : new Error(`no case ${arg}`);
        }
        case "meta":
          ctx.setHeader("x-reply-header", `saw ${ctx.header("x-request-id")}`);
          ctx.setTrailer("x-reply-trailer", "done");
          ctx.setTrailer("x-reply-bin", new Uint8Array([1, 2, 3]));
          return { scorerName: ctx.metadata.get("x-multi").join(",") };
        case "big":
          return { scores: new Array(Number(arg)).fill(0.5) };
        default:
          throw new errors.NotFoundError(`scorer: unknown scorer "${request.scorer}"`);
      }
    },
    loadScorer: () => ({}),
    unloadScorer: () => ({}),
    setAlias: () => ({ previous: "" }),
    listScorers: () => ({ aliases: { best: "echo@1" } }),
  };
  return impl;
}

/** Fake trainer: StreamProgress emits steps from_step..5 (run "fail" throws after two events). */
function fakeTrainer(observed: { signals: AbortSignal[] } = { signals: [] }): ImplOf<typeof TrainerService> {
  return {
    startRun: () => ({ runId: "r1" }),
    getRun: (req) => ({ run: { runId: req.runId, state: RunState.RUNNING } }),
    listRuns: () => ({}),
    stopRun: () => ({}),
    async *streamProgress(request, ctx) {
      observed.signals.push(ctx.signal);
      for (let step = request.fromStep; step <= 5n; step++) {
        if (request.runId === "fail" && step === request.fromStep + 2n) {
          throw new errors.NotFoundError(`run_id: run "fail" vanished`);
        }
        if (request.runId === "endless") await sleepUnlessAborted(20, ctx.signal);
        yield {
          event: {
            runId: request.runId,
            step,
            totalSteps: 5n,
            state: RunState.RUNNING,
            loss: Number(step) / 10,
          },
        };
        if (request.runId === "endless") step = request.fromStep; // never ends on its own
      }
    },
  };
}

Deno.test("gRPC smoke: unary, server streaming and health over loopback", async () => {
  const t = await startTestServer((s) => {
    s.addService(RewardService, fakeReward());
    s.addService(TrainerService, fakeTrainer());
  });
  try {
    const reward = t.client(RewardService);
    const res = await reward.score({
      scorer: "echo",
      images: [{ width: 2, height: 1, channels: 3, data: new Uint8Array(6) }, { data: new Uint8Array(12) }],
    });
    assertEquals(res.scores, [6, 12]);
    assertEquals(res.scorerName, "echo");
    assertEquals(res.$typeName, "rdpo.v1.ScoreResponse");
    const list = await reward.listScorers({});
    assertEquals(list.aliases, { best: "echo@1" });

    const trainer = t.client(TrainerService);
    const steps: bigint[] = [];
    for await (const msg of trainer.streamProgress({ runId: "r", fromStep: 2n })) steps.push(msg.event!.step);
    assertEquals(steps, [2n, 3n, 4n, 5n]);

    const health = t.client(Health);
    assertEquals((await health.check({ service: "" })).status, Serving.SERVING);
  } finally {
    await t.close();
  }
});

Deno.test("a request message built with create() is sent as is", async () => {
  const t = await startTestServer((s) => s.addService(RewardService, fakeReward()));
  try {
    const req = create(ScoreRequestSchema, { scorer: "echo", images: [{ data: new Uint8Array(5) }] });
    assertEquals((await t.client(RewardService).score(req)).scores, [5]);
  } finally {
    await t.close();
  }
});

Deno.test("deadline: client gets DEADLINE_EXCEEDED and the handler's signal aborts", async () => {
  const observed = { signals: [] as AbortSignal[], contexts: [] as CallContext[] };
  const t = await startTestServer((s) => s.addService(RewardService, fakeReward(observed)));
  try {
    const reward = t.client(RewardService);
    const err = await rpcFailure(() => reward.score({ scorer: "slow:5000" }, { timeoutMs: 100 }));
    assertEquals(err.code, Code.DEADLINE_EXCEEDED);
    const signal = observed.signals[0];
    for (let i = 0; i < 50 && !signal.aborted; i++) await sleep(10);
    assert(signal.aborted, "server-side signal aborted");
    assert(signal.reason instanceof errors.DeadlineExceededError, `reason ${signal.reason}`);
    assert(observed.contexts[0].deadline instanceof Date, "ctx.deadline is set");
  } finally {
    await t.close();
  }
});

Deno.test("default client timeout applies to calls that set none", async () => {
  const t = await startTestServer((s) => s.addService(RewardService, fakeReward()));
  try {
    const reward = t.client(RewardService, { defaultTimeoutMs: 80 });
    const err = await rpcFailure(() => reward.score({ scorer: "slow:5000" }));
    assertEquals(err.code, Code.DEADLINE_EXCEEDED);
  } finally {
    await t.close();
  }
});

Deno.test("client AbortSignal cancels: CANCELLED and the handler's signal aborts", async () => {
  const observed = { signals: [] as AbortSignal[], contexts: [] as CallContext[] };
  const t = await startTestServer((s) => s.addService(RewardService, fakeReward(observed)));
  try {
    const reward = t.client(RewardService);
    const controller = new AbortController();
    const call = reward.score({ scorer: "slow:5000" }, { signal: controller.signal });
    while (observed.signals.length === 0) await sleep(5);
    controller.abort();
    const err = await rpcFailure(() => call);
    assertEquals(err.code, Code.CANCELLED);
    const signal = observed.signals[0];
    for (let i = 0; i < 50 && !signal.aborted; i++) await sleep(10);
    assert(signal.reason instanceof errors.CancelledError, `reason ${signal.reason}`);
  } finally {
    await t.close();
  }
});

Deno.test("metadata passes both ways: request headers in, response headers and trailers out", async () => {
  const t = await startTestServer((s) => s.addService(RewardService, fakeReward()));
  try {
    const reward = t.client(RewardService);
    let header: grpc.Metadata | undefined;
    let trailer: grpc.Metadata | undefined;
    const res = await reward.score({ scorer: "meta" }, {
      metadata: { "x-request-id": "abc-1", "x-multi": ["a", "b"] },
      onHeader: (md) => (header = md),
      onTrailer: (md) => (trailer = md),
    });
    // HTTP/2 joins repeated request headers into one value.
    assertEquals(res.scorerName, "a, b");
    assertEquals(header?.get("x-reply-header"), ["saw abc-1"]);
    assertEquals(trailer?.get("x-reply-trailer"), ["done"]);
    assertEquals([...(trailer?.get("x-reply-bin")[0] as Uint8Array)], [1, 2, 3]);
  } finally {
    await t.close();
  }
});

Deno.test("error mapping: every ServiceError class, RpcError pass-through, unknown -> INTERNAL", async () => {
  const logged: string[] = [];
  const t = await startTestServer((s) => s.addService(RewardService, fakeReward()), {
    log: (message, error) => logged.push(`${message} ${error}`),
  });
  try {
    const reward = t.client(RewardService);
    for (const [name, make, code] of ERROR_CASES) {
      const err = await rpcFailure(() => reward.score({ scorer: `throw:${name}` }));
      assertEquals(err.code, code, `${name} -> ${err.codeName}`);
      if (code === Code.INTERNAL) {
        assertEquals(err.details, "internal error", "no internals leak");
      } else {
        const expected = make();
        assertEquals(err.details, expected instanceof RpcError ? expected.details : expected.message);
      }
    }
    assertEquals(logged.length, 1, "only the unknown error is logged");
    assert(
      logged[0].includes("/rdpo.v1.RewardService/Score") && logged[0].includes("secret path"),
      logged[0],
    );
  } finally {
    await t.close();
  }
});

Deno.test("every ServiceError subclass of lib/errors.ts is in the mapping table", () => {
  const classes = Object.values(errors).filter((v) =>
    typeof v === "function" && v.prototype instanceof errors.ServiceError
  ) as { name: string }[];
  for (const cls of classes) {
    assert(ERROR_CASES.some(([name]) => name === cls.name), `${cls.name} missing from ERROR_CASES`);
  }
});

Deno.test("message size limits: oversize request, response, and client receive -> RESOURCE_EXHAUSTED", async () => {
  const limit = 64 * 1024;
  const t = await startTestServer((s) => s.addService(RewardService, fakeReward()), {
    maxReceiveMessageBytes: limit,
    maxSendMessageBytes: limit,
  });
  try {
    const reward = t.client(RewardService);
    const big = { scorer: "echo", images: [{ data: new Uint8Array(limit + 1) }] };
    assertEquals((await rpcFailure(() => reward.score(big))).code, Code.RESOURCE_EXHAUSTED);
    // 8 bytes per double: a response just over the server's send limit.
    const bigReply = { scorer: `big:${limit / 8 + 1}` };
    assertEquals((await rpcFailure(() => reward.score(bigReply))).code, Code.RESOURCE_EXHAUSTED);
    // Under the server's limit, over the client's receive limit.
    const small = t.client(RewardService, { maxReceiveMessageBytes: 1024 });
    const mid = { scorer: "big:1000" };
    assertEquals((await rpcFailure(() => small.score(mid))).code, Code.RESOURCE_EXHAUSTED);
    // The server still answers normal calls.
    assertEquals((await reward.score({ scorer: "echo", images: [{ data: new Uint8Array(10) }] })).scores, [
      10,
    ]);
  } finally {
    await t.close();
  }
});

Deno.test("onCall middleware sees every call's name, metadata and final status, outermost first", async () => {
  const seen: string[] = [];
  const recorder = async (call: CallInfo, next: () => Promise<{ code: number }>) => {
    seen.push(`start ${call.path} ${call.kind} ${call.metadata.get("traceparent")[0] ?? "-"}`);
    const status = await next();
    seen.push(`end ${call.method} ${status.code}`);
    return status as never;
  };
  const t = await startTestServer((s) => {
    s.addService(RewardService, fakeReward());
    s.addService(TrainerService, fakeTrainer());
  }, {
    onCall: [recorder, async (_call, next) => {
      seen.push("inner");
      return await next();
    }],
  });
  try {
    const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    await t.client(RewardService).score({ scorer: "echo" }, { metadata: { traceparent } });
    await rpcFailure(() => t.client(RewardService).score({ scorer: "throw:NotFoundError" }));
    for await (const _ of t.client(TrainerService).streamProgress({ fromStep: 5n })) { /* drain */ }
    assertEquals(seen, [
      `start /rdpo.v1.RewardService/Score unary ${traceparent}`,
      "inner",
      `end Score ${Code.OK}`,
      "start /rdpo.v1.RewardService/Score unary -",
      "inner",
      `end Score ${Code.NOT_FOUND}`,
      "start /rdpo.v1.TrainerService/StreamProgress server_streaming -",
      "inner",
      `end StreamProgress ${Code.OK}`,
    ]);
  } finally {
    await t.close();
  }
});

Deno.test("middleware may deny a call without running the handler", async () => {
  let ran = false;
  const t = await startTestServer((s) =>
    s.addService(RewardService, {
      ...fakeReward(),
      score: () => {
        ran = true;
        return {};
      },
    }), {
    onCall: [
      async (call, next) =>
        call.metadata.get("authorization").length
          ? await next()
          : { code: Code.UNAUTHENTICATED, details: "no token" },
    ],
  });
  try {
    const err = await rpcFailure(() => t.client(RewardService).score({}));
    assertEquals([err.code, err.details, ran], [Code.UNAUTHENTICATED, "no token", false]);
  } finally {
    await t.close();
  }
});

// grpc-js hands a non-OK status to the reader without waiting for messages it has not read yet
// (subchannel-call maybeOutputStatus), so only a prefix of what was sent before the error is certain.
Deno.test("server streaming: an error mid-stream ends the stream with its status", async () => {
  const t = await startTestServer((s) => s.addService(TrainerService, fakeTrainer()));
  try {
    const got: bigint[] = [];
    const err = await rpcFailure(async () => {
      for await (const m of t.client(TrainerService).streamProgress({ runId: "fail", fromStep: 1n })) {
        got.push(m.event!.step);
      }
    });
    assertEquals([err.code, err.details], [Code.NOT_FOUND, `run_id: run "fail" vanished`]);
    assertEquals(got, [1n, 2n].slice(0, got.length), "messages received are a prefix of those sent");
  } finally {
    await t.close();
  }
});

Deno.test("server streaming: a client that stops reading cancels the handler", async () => {
  const observed = { signals: [] as AbortSignal[] };
  const t = await startTestServer((s) => s.addService(TrainerService, fakeTrainer(observed)));
  try {
    let n = 0;
    for await (const _ of t.client(TrainerService).streamProgress({ runId: "endless" })) {
      if (++n === 3) break;
    }
    const signal = observed.signals[0];
    for (let i = 0; i < 100 && !signal.aborted; i++) await sleep(10);
    assert(signal.aborted, "handler signal aborted after the client broke out of the loop");
  } finally {
    await t.close();
  }
});

Deno.test("graceful shutdown drains an in-flight call, then refuses new ones", async () => {
  const observed = { signals: [] as AbortSignal[], contexts: [] as CallContext[] };
  const t = await startTestServer((s) => s.addService(RewardService, fakeReward(observed)));
  const reward = t.client(RewardService);
  const health = t.client(Health);
  try {
    const watch = health.watch({ service: "" })[Symbol.asyncIterator]();
    assertEquals((await watch.next()).value?.status, Serving.SERVING);
    const inFlight = reward.score({ scorer: "slow:300" });
    while (observed.signals.length === 0) await sleep(5);
    const started = deferred<void>();
    const shutdown = t.server.shutdown(10_000).finally(() => started.resolve());
    // Watchers learn NOT_SERVING, then their stream ends so it does not hold up the drain.
    assertEquals((await watch.next()).value?.status, Serving.NOT_SERVING);
    assertEquals((await watch.next()).done, true);
    assertEquals((await inFlight).scorerName, "slow", "the in-flight call completed");
    assertEquals(await shutdown, { drained: true, abandoned: 0 });
    assert(!observed.signals[0].aborted, "the drained call was not cancelled");
    const err = await rpcFailure(() => reward.score({ scorer: "echo" }, { timeoutMs: 2000 }));
    assertEquals(err.code, Code.UNAVAILABLE);
  } finally {
    await t.close();
  }
});

Deno.test("shutdown past its grace period cancels what is still running", async () => {
  const observed = { signals: [] as AbortSignal[], contexts: [] as CallContext[] };
  const t = await startTestServer((s) => s.addService(RewardService, fakeReward(observed)));
  const reward = t.client(RewardService);
  try {
    const inFlight = reward.score({ scorer: "slow:60000" }).catch((e) => e);
    while (observed.signals.length === 0) await sleep(5);
    const result = await t.server.shutdown(100);
    assertEquals(result, { drained: false, abandoned: 1 });
    assert(
      observed.signals[0].reason instanceof errors.UnavailableError,
      `reason ${observed.signals[0].reason}`,
    );
    const err = await inFlight;
    assert(err instanceof RpcError, `call failed: ${err}`);
  } finally {
    await t.close();
  }
});

Deno.test("addService rejects an implementation that misses a method", async () => {
  const t = startTestServer((s) => {
    const partial = { score: () => ({}) } as unknown as ImplOf<typeof RewardService>;
    s.addService(RewardService, partial);
  });
  await assertRejects(() => t, Error, "no handler for method LoadScorer");
});

Deno.test("client hooks add metadata to every call and see each call's final status", async () => {
  const seenByServer: string[] = [];
  const ends: string[] = [];
  const t = await startTestServer((s) => s.addService(RewardService, fakeReward()), {
    onCall: [async (call, next) => {
      seenByServer.push(call.metadata.get("traceparent")[0] as string);
      return await next();
    }],
  });
  try {
    const reward = t.client(RewardService, {
      onCall: [(call) => {
        call.metadata.set("traceparent", `00-${"1".repeat(32)}-${"2".repeat(16)}-01`);
        return (status) => ends.push(`${call.method} ${codeName(status.code)}`);
      }],
    });
    await reward.score({ scorer: "echo" });
    await rpcFailure(() => reward.score({ scorer: "throw:NotFoundError" }));
    assertEquals(seenByServer, [
      `00-${"1".repeat(32)}-${"2".repeat(16)}-01`,
      `00-${"1".repeat(32)}-${"2".repeat(16)}-01`,
    ]);
    assertEquals(ends, ["Score OK", "Score NOT_FOUND"]);
  } finally {
    await t.close();
  }
});

Deno.test("waitForReady: resolves for a live server, UNAVAILABLE for a closed port", async () => {
  const t = await startTestServer(() => {});
  const port = t.port;
  try {
    await waitForReady(t.client(Health), 2000);
  } finally {
    await t.close();
  }
  const orphan = createClient(Health, `127.0.0.1:${port}`);
  try {
    const err = await rpcFailure(() => waitForReady(orphan, 300));
    assertEquals(err.code, Code.UNAVAILABLE);
  } finally {
    orphan.close();
  }
});
