import { assert, assertEquals, assertRejects, assertThrows } from "../../lib/testing/assert.ts";
import {
  AlreadyExistsError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  UnavailableError,
} from "../../lib/errors.ts";
import { fakeScore, FakeScorer, type FakeScorerOptions, solidImage } from "./fake_scorer.ts";
import { type ScorerFactory, ScorerRegistry, type ScorerSource, WARMUP_PROMPT } from "./registry.ts";
import type { RgbImage } from "./scorer.ts";

/** A registry whose factory builds FakeScorers; `kind` "v<N>" gives offset N, options per kind. */
function fakeRegistry(options: Record<string, FakeScorerOptions> = {}) {
  const made = new Map<string, FakeScorer>();
  const factory: ScorerFactory = (source: ScorerSource) => {
    if (source.kind === "missing") return Promise.reject(new Error("no such model file"));
    const offset = Number(source.kind.replace(/^v/, "")) || 0;
    const scorer = new FakeScorer({ kind: source.kind, offset, ...options[source.kind] });
    made.set(source.kind, scorer);
    return Promise.resolve(scorer);
  };
  const logs: string[] = [];
  const registry = new ScorerRegistry({
    factory,
    defaultBatching: { maxBatch: 8, maxQueueDelayMs: 1 },
    defaultDrainTimeoutMs: 5_000,
    log: (level, message) => logs.push(`${level}: ${message}`),
  });
  return { registry, made, logs };
}

const img: RgbImage = solidImage(4, 4, 100);

async function scoreWith(registry: ScorerRegistry, ref: string, image = img) {
  const lease = registry.resolve(ref);
  try {
    const result = await lease.score([image], []);
    return { version: lease.version, score: result.scores[0] };
  } finally {
    lease.release();
  }
}

Deno.test("registry: load warms up, marks READY, resolves by name, alias and name@version", async () => {
  const { registry, made } = fakeRegistry({ v1: { needsPrompts: true } });
  const status = await registry.load("aesthetic", "1", { kind: "v1" }, undefined, "prod");
  assertEquals(status.state, "READY");
  assertEquals(status.batching, { maxBatch: 8, maxQueueDelayMs: 1 });
  assert(status.needsPrompts);
  // The warm-up batch: one synthetic image with the prompt.
  assertEquals(made.get("v1")!.batchSizes, [1]);
  for (const ref of ["aesthetic", "prod", "aesthetic@1"]) {
    const lease = registry.resolve(ref);
    assertEquals([lease.name, lease.version], ["aesthetic", "1"]);
    const result = await lease.score([img], [WARMUP_PROMPT]);
    assertEquals(result.scores[0], fakeScore(img, WARMUP_PROMPT, 1));
    lease.release();
  }
  const listed = registry.list();
  assertEquals(listed.aliases, { prod: "aesthetic@1" });
  assertEquals(listed.scorers[0].requestCount, 3);
  assertEquals(listed.scorers[0].imageCount, 3);
  assertEquals(listed.scorers[0].inFlight, 0);
});

Deno.test("registry: unknown names, aliases and versions are NotFound with a clear message", async () => {
  const { registry } = fakeRegistry();
  await registry.load("aesthetic", "1", { kind: "v1" }, undefined, "prod");
  assertThrows(
    () => registry.resolve("pickscore"),
    NotFoundError,
    'no scorer, alias or version named "pickscore"',
  );
  assertThrows(
    () => registry.resolve("aesthetic@9"),
    NotFoundError,
    "aesthetic@9 is not loaded (ready: aesthetic@1",
  );
  assertThrows(() => registry.resolve(""), InvalidArgumentError, "scorer: empty");
  assertThrows(() => registry.setAlias("x", "aesthetic", "9"), NotFoundError, "aesthetic@9");
  await assertRejects(() => registry.unload("aesthetic", "9"), NotFoundError, "aesthetic@9");
});

Deno.test("registry: name resolves to the most recently READY version", async () => {
  const { registry } = fakeRegistry();
  await registry.load("m", "10", { kind: "v10" });
  await registry.load("m", "2", { kind: "v2" });
  assertEquals((await scoreWith(registry, "m")).version, "2");
  await registry.unload("m", "2");
  assertEquals((await scoreWith(registry, "m")).version, "10");
});

Deno.test("registry: a failed load or warm-up leaves the serving version and alias untouched", async () => {
  const { registry } = fakeRegistry({ v2: { failAll: "bad weights" } });
  await registry.load("m", "1", { kind: "v1" }, undefined, "m-prod");
  await assertRejects(
    () => registry.load("m", "2", { kind: "v2" }, undefined, "m-prod"),
    FailedPreconditionError,
    "warm-up of m@2 failed: bad weights",
  );
  await assertRejects(
    () => registry.load("m", "3", { kind: "missing" }),
    FailedPreconditionError,
    "no such model file",
  );
  assertEquals(registry.aliases().get("m-prod"), "m@1");
  assertEquals((await scoreWith(registry, "m-prod")).version, "1");
  assertEquals((await scoreWith(registry, "m")).version, "1");
  const failed = registry.list().scorers.filter((s) => s.state === "FAILED");
  assertEquals(failed.map((s) => [s.version, s.error]), [
    ["2", "warm-up of m@2 failed: bad weights"],
    ["3", "loading m@3 failed: no such model file"],
  ]);
  assertThrows(() => registry.resolve("m@2"), FailedPreconditionError, "failed to load");
  // A failed version can be loaded again (replacing the FAILED entry) or removed.
  await registry.load("m", "3", { kind: "v3" });
  await registry.unload("m", "2");
  assertEquals(registry.list().scorers.map((s) => `${s.version}:${s.state}`), ["1:READY", "3:READY"]);
});

Deno.test("registry: swap while requests are in flight: each finishes on the version it resolved", async () => {
  const { registry, made } = fakeRegistry();
  await registry.load("m", "1", { kind: "v1" }, undefined, "prod");
  const v1 = made.get("v1")!;
  v1.hold();
  const inFlight = Array.from({ length: 5 }, () => scoreWith(registry, "prod"));
  assertEquals(registry.get("m", "1")!.inFlight, 5);
  // Load v2 beside v1, flip the alias, unload v1: the unload must wait for the 5 requests.
  await registry.load("m", "2", { kind: "v2" }, undefined, "prod");
  assertEquals((await scoreWith(registry, "prod")).version, "2");
  let unloaded = false;
  const unloading = registry.unload("m", "1").then((r) => {
    unloaded = true;
    return r;
  });
  await new Promise((r) => setTimeout(r, 20));
  assertEquals(unloaded, false);
  assertEquals(registry.get("m", "1")!.state, "DRAINING");
  assertThrows(() => registry.resolve("m@1"), NotFoundError, "being unloaded");
  assertEquals(v1.closed, false);
  v1.release();
  const results = await Promise.all(inFlight);
  assert(results.every((r) => r.version === "1" && r.score === fakeScore(img, undefined, 1)));
  assertEquals(await unloading, { drainedRequests: 5, abandonedRequests: 0 });
  assert(v1.closed);
  assertEquals(registry.get("m", "1"), undefined);
});

Deno.test("registry: unload is bounded by the drain timeout", async () => {
  const { registry, made, logs } = fakeRegistry();
  await registry.load("m", "1", { kind: "v1" });
  made.get("v1")!.hold();
  const stuck = scoreWith(registry, "m").catch((e) => e);
  const result = await registry.unload("m", "1", 30);
  assertEquals(result, { drainedRequests: 0, abandonedRequests: 1 });
  assert(logs.some((l) => l.startsWith("warn:") && l.includes("drain timed out")));
  made.get("v1")!.release();
  await stuck;
});

Deno.test("registry: alias flips are atomic and return the previous target", async () => {
  const { registry } = fakeRegistry();
  await registry.load("m", "1", { kind: "v1" });
  await registry.load("m", "2", { kind: "v2" });
  assertEquals(registry.setAlias("prod", "m", "1"), "");
  assertEquals(registry.setAlias("prod", "m", "2"), "m@1");
  assertEquals((await scoreWith(registry, "prod")).version, "2");
  // Flip back and forth while requests resolve: every request sees exactly one of the targets.
  const seen = new Set<string>();
  const requests: Promise<void>[] = [];
  for (let i = 0; i < 40; i++) {
    registry.setAlias("prod", "m", i % 2 === 0 ? "1" : "2");
    requests.push(scoreWith(registry, "prod").then((r) => void seen.add(`${r.version}:${r.score}`)));
  }
  await Promise.all(requests);
  assertEquals([...seen].sort(), [`1:${fakeScore(img, undefined, 1)}`, `2:${fakeScore(img, undefined, 2)}`]);
  // The alias target cannot be unloaded until the alias moves; deleting the alias is explicit.
  await assertRejects(() => registry.unload("m", "2"), FailedPreconditionError, "alias prod");
  assertEquals(registry.setAlias("prod", "", ""), "m@2");
  await registry.unload("m", "2");
  assertThrows(() => registry.resolve("prod"), NotFoundError);
});

Deno.test("registry: LOADING versions are not servable; duplicate loads are rejected", async () => {
  let finish!: () => void;
  const gate = new Promise<void>((r) => (finish = r));
  const registry = new ScorerRegistry({
    factory: async () => {
      await gate;
      return new FakeScorer();
    },
    defaultBatching: { maxBatch: 4, maxQueueDelayMs: 0 },
    log: () => {},
  });
  const loading = registry.load("m", "1", { kind: "fake" });
  assertEquals(registry.get("m", "1")!.state, "LOADING");
  assertThrows(() => registry.resolve("m"), UnavailableError, "still loading");
  assertThrows(() => registry.setAlias("prod", "m", "1"), FailedPreconditionError, "loading");
  await assertRejects(() => registry.load("m", "1", { kind: "fake" }), AlreadyExistsError, "already loading");
  await assertRejects(() => registry.unload("m", "1"), FailedPreconditionError, "still loading");
  finish();
  await loading;
  await assertRejects(() => registry.load("m", "1", { kind: "fake" }), AlreadyExistsError, "already ready");
});

Deno.test("registry: names, versions and aliases are validated", async () => {
  const { registry } = fakeRegistry();
  await assertRejects(() => registry.load("a@b", "1", { kind: "v1" }), InvalidArgumentError, "name:");
  await assertRejects(() => registry.load("a", "", { kind: "v1" }), InvalidArgumentError, "version:");
  await assertRejects(
    () => registry.load("a", "1", { kind: "v1" }, undefined, "../x"),
    InvalidArgumentError,
    "alias:",
  );
  await assertRejects(
    () => registry.load("a", "1", { kind: "v1" }, { maxBatch: 100000 }),
    InvalidArgumentError,
    "batching.max_batch",
  );
  assertEquals(registry.list().scorers, []);
});

Deno.test("registry: scorer errors are counted; closeAll drains everything", async () => {
  const { registry, made } = fakeRegistry({ v1: { poisonByte: 7 } });
  await registry.load("m", "1", { kind: "v1" });
  await assertRejects(() => scoreWith(registry, "m", solidImage(2, 2, 7)), Error, "poisoned");
  await scoreWith(registry, "m");
  const status = registry.get("m", "1")!;
  assertEquals([status.requestCount, status.errorCount, status.imageCount], [2, 1, 1]);
  assert(status.meanLatencyMs >= 0 && status.p99LatencyMs >= 0);
  await registry.closeAll();
  assertEquals(registry.list().scorers, []);
  assert(made.get("v1")!.closed);
});
