/**
 * Where one Session message's wire time goes (issue 21), hop by hop, across both processes: the
 * trainer's own loop (as bench/step_wire_bench.ts runs it: tiny model, real policy and reward
 * service processes on loopback, the real messages and sizes, every call after model work) with
 * RDPO_HOP_TRACE set, so lib/rpc/hop_trace.ts timestamps each hop of every Session message in the
 * trainer and in both services. Prints the median per hop over the messages of the steps after
 * the first, per service and overall.
 *
 *   deno run -A bench/session_hop_probe.ts [--steps 4] [--skip 1] [--estimator q]
 *
 * Timing: run it under the shared CPU lock (flock /work/cpu.lock ...) when the numbers are quoted.
 */
import { join } from "node:path";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    steps: { type: "string", default: "4" },
    estimator: { type: "string", default: "q" },
    // Steps left out of the medians: the first warms connections; later ones warm V8's JIT (a
    // codec called a few dozen times still runs unoptimized, ~10x slower than in a long run).
    skip: { type: "string", default: "1" },
    // Only the table over all messages (deno task bench), not one per method.
    summary: { type: "boolean", default: false },
  },
});
const steps = Number(values.steps);
const skip = Number(values.skip);

const tmp = await Deno.makeTempDir({ prefix: "rdpo-hop-probe-" });
const prefix = join(tmp, "hops");
// Before any lib/rpc module loads (hop_trace.ts reads it once): the trainer traces too.
Deno.env.set("RDPO_HOP_TRACE", prefix);

const { hops } = await import("../lib/rpc/hop_trace.ts");
const { median } = await import("../lib/stats.ts");
const { train } = await import("../services/trainer/loop.ts");
const { stepConfig, stepServices } = await import("./step_setup.ts");
type HopMark = import("../lib/rpc/hop_trace.ts").HopMark;

const services = await stepServices({ RDPO_HOP_TRACE: prefix });
const { reward, policy } = services;
let firstStepEnd = 0;
try {
  await reward.start();
  await policy.start();
  const runDir = join(tmp, "run");
  const config = stepConfig(services, {
    runDir,
    steps,
    estimator: values.estimator!,
    sessionStream: true,
  });
  let stepsDone = 0;
  await train(config, {
    progress: "none",
    log: () => {},
    onRecord: (record: { type: string }) => {
      // The first `skip` steps (connections, JIT warm-up) are left out.
      if (record.type === "step" && ++stepsDone === skip) {
        firstStepEnd = performance.timeOrigin + performance.now();
      }
    },
    skipEvaluation: true,
    sampleLeadSteps: true,
  });
} finally {
  await policy.stop().catch(() => {});
  await reward.stop().catch(() => {});
  await services.remove();
}

interface Proc {
  side: "client" | "server";
  marks: HopMark[];
}
const procs: Proc[] = [{ side: "client", marks: hops!.marks }];
for await (const e of Deno.readDir(tmp)) {
  if (!e.name.startsWith("hops.") || !e.name.endsWith(".jsonl")) continue;
  const text = await Deno.readTextFile(join(tmp, e.name));
  procs.push({ side: "server", marks: text.trim().split("\n").map((l) => JSON.parse(l)) });
}
await Deno.remove(tmp, { recursive: true });
const clientMarks = [...hops!.marks];
hops!.marks.length = 0; // read here, not flushed at exit
procs[0].marks = clientMarks;

/** The hops of one message, in order, and whose code each one is; cross-process ones from the raw HTTP/2 events. */
const ORDER = [
  ["c.call", "client: call entry", "ours"],
  ["c.hooks", "client: hooks (CLIENT span, metadata)", "ours"],
  ["c.enc0", "client: trace keys, timeout", "ours"],
  ["c.enc1", "client: protobuf create + encode", "protobuf"],
  ["c.write0", "client: carrier lookup, pending entry, deadline", "ours"],
  ["c.write1", "client: grpc-js write() (synchronous part)", "transport"],
  ["c.h2w", "client: grpc-js -> http2 stream.write (deferred)", "transport"],
  ["s.h2d", "client http2 write -> server DATA event (other process)", "transport"],
  ["s.dec0", "server: grpc-js framing -> deserializer", "transport"],
  ["s.dec1", "server: wire-type check + protobuf decode", "protobuf"],
  ["s.read", "server: grpc-js -> stream 'data' -> session", "transport"],
  ["s.dispatch", "server: checks", "ours"],
  ["s.call", "server: metadata clone, deadline, ServerCall", "ours"],
  ["s.run", "server: track", "ours"],
  ["s.handler0", "server: middleware entry (SERVER span, auth, concurrency)", "ours"],
  ["s.handler1", "server: HANDLER (not wire)", "handler"],
  ["s.done", "server: middleware exit (span end, metrics)", "ours"],
  ["s.enc0", "server: finish, result", "ours"],
  ["s.enc1", "server: protobuf create + encode", "protobuf"],
  ["s.write0", "server: write queue", "ours"],
  ["s.write1", "server: grpc-js write() (framing copy, http2 write)", "transport"],
  ["s.h2w", "server: grpc-js -> http2 stream.write", "transport"],
  ["c.h2d", "server http2 write -> client DATA event (other process)", "transport"],
  ["c.dec0", "client: grpc-js framing -> deserializer", "transport"],
  ["c.dec1", "client: protobuf decode", "protobuf"],
  ["c.data", "client: grpc-js -> 'data' event", "transport"],
  ["c.resolve", "client: trailers, byte/codec callbacks, hooks end", "ours"],
  ["c.resumed", "client: promise resolution -> caller", "ours"],
] as const;

type Hop = (typeof ORDER)[number][0];
interface Msg {
  path: string;
  id: number;
  method: string;
  t: Partial<Record<Hop, number>>;
}
const msgs = new Map<string, Msg>();
const raw: { side: string; path: string; hop: string; t: number }[] = [];
for (const p of procs) {
  for (const m of p.marks) {
    if (m.hop.startsWith("h2.") || m.id === 0) {
      raw.push({ side: p.side, path: m.path, hop: m.hop, t: m.t });
      continue;
    }
    const key = `${m.path}#${m.id}`;
    const msg = msgs.get(key) ?? { path: m.path, id: m.id, method: "", t: {} };
    msg.t[m.hop as Hop] ??= m.t;
    if (m.hop === "c.call") msg.method = String(m.note);
    msgs.set(key, msg);
  }
}
raw.sort((a, b) => a.t - b.t);
const firstAfter = (side: string, path: string, hop: string, t: number | undefined) =>
  t === undefined
    ? undefined
    : raw.find((r) => r.side === side && r.path === path && r.hop === hop && r.t >= t)?.t;
for (const m of msgs.values()) {
  m.t["c.h2w"] = firstAfter("client", m.path, "h2.write", m.t["c.write0"]);
  // The h2 write may come inside write() or after it; the table orders write1 first.
  if (m.t["c.h2w"]! < m.t["c.write1"]!) m.t["c.write1"] = m.t["c.h2w"];
  m.t["s.h2d"] = firstAfter("server", m.path, "h2.data", m.t["c.h2w"]);
  m.t["s.h2w"] = firstAfter("server", m.path, "h2.write", m.t["s.write0"]);
  if (m.t["s.h2w"]! < m.t["s.write1"]!) m.t["s.write1"] = m.t["s.h2w"];
  m.t["c.h2d"] = firstAfter("client", m.path, "h2.data", m.t["s.h2w"]);
}
const measured = [...msgs.values()].filter((m) => (m.t["c.call"] ?? 0) > firstStepEnd && m.t["c.resumed"]);

function table(title: string, list: Msg[]): string {
  const lines = [
    `### ${title} (${list.length} messages)`,
    "",
    "| hop (ends at) | what | median ms | p90 ms |",
    "| --- | --- | ---: | ---: |",
  ];
  const sums: Record<string, number> = {};
  for (let i = 1; i < ORDER.length; i++) {
    const [hop, what, whose] = ORDER[i];
    // From the nearest earlier hop the message has (an older build may lack some marks).
    const d = list.flatMap((m) => {
      const t = m.t[hop];
      if (t === undefined) return [];
      for (let j = i - 1; j >= 0; j--) {
        const p = m.t[ORDER[j][0]];
        if (p !== undefined) return [t - p];
      }
      return [];
    }).sort((a, b) => a - b);
    if (d.length === 0) {
      lines.push(`| ${hop} | ${what} (not marked) | - | - |`);
      continue;
    }
    const med = median(d);
    sums[whose] = (sums[whose] ?? 0) + med;
    lines.push(
      `| ${hop} | ${what} | ${med.toFixed(3)} | ${(d[Math.floor(d.length * 0.9)] ?? NaN).toFixed(3)} |`,
    );
  }
  const wireSum = (sums.ours ?? 0) + (sums.protobuf ?? 0) + (sums.transport ?? 0);
  for (const whose of ["transport", "protobuf", "ours"]) {
    lines.push(
      `| | sum: ${
        whose === "ours"
          ? "lib/rpc + telemetry"
          : whose === "transport"
          ? "grpc-js, node:http2, loopback"
          : "protobuf"
      } | ${(sums[whose] ?? 0).toFixed(3)} | |`,
    );
  }
  const total = list.map((m) =>
    m.t["c.resumed"]! - m.t["c.call"]! - (m.t["s.handler1"]! - m.t["s.handler0"]!)
  );
  lines.push(`| | sum of hop medians except the handler | ${wireSum.toFixed(3)} | |`);
  lines.push(`| | median wire (call -> resumed minus handler) | ${median(total).toFixed(3)} | |`);
  return lines.join("\n");
}

console.log(
  `bench/session_hop_probe.ts: steps=${steps} (first ${skip} left out) estimator=${values.estimator}, load ${
    Deno.loadavg()[0].toFixed(2)
  }\n`,
);
console.log(table("all Session messages", measured));
for (const method of values.summary ? [] : [...new Set(measured.map((m) => m.method))].sort()) {
  console.log();
  console.log(table(method, measured.filter((m) => m.method === method)));
}
Deno.exit(0);
