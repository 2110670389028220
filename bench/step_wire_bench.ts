/**
 * Wire cost of whole RDPO steps (issue 21): the trainer's own loop (services/trainer/loop.ts)
 * against real policy and reward service processes on loopback, with the tiny random model
 * (services/policy/testing/tiny_model.ts) and the built-in JPEG reward. Every step record carries
 * the RPCs it made, the encoded message bytes both ways and its wire time (RPC wall time minus
 * the servers' `rdpo-server-ms`); the table shows medians over the steps after the first (warm-up).
 *
 * Three paths, interleaved per round: one SampleCandidates per inference step (before), lead steps
 * folded into the next call, and the same with every call a message on one Session stream per
 * service (lib/rpc/session_client.ts) instead of its own HTTP/2 stream.
 *
 * Runs the shared_parent configuration twice: estimator q and delta_q (whose first fine-tune step
 * also scores the parents; since issue 21 in the same Score call as the candidates).
 *
 *   deno run -A bench/step_wire_bench.ts [--steps 5]
 */
import { join } from "node:path";
import { stepConfig, stepServices } from "./step_setup.ts";
import { median } from "../lib/stats.ts";
import type { FlagSpecs } from "../lib/rpc/flags.ts";
import { type CommandSpec, runCommand } from "../lib/cli/command.ts";
import { train } from "../services/trainer/loop.ts";
import { readMetrics, type StepMetrics, type WireByRpc } from "../services/trainer/metrics.ts";

export interface StepWireRow {
  setup: string;
  /** Which sampling path (PATHS). */
  path: string;
  /** 1-minute load average after the path's runs (median over rounds). */
  load: number;
  steps: number;
  rpcs: number;
  /** Of rpcs: sent as Session stream messages. */
  streamMessages: number;
  bytesSent: number;
  bytesReceived: number;
  wireMs: number;
  wireMsRange: [number, number];
  stepMs: number;
  /** Per RPC name: medians over the measured steps of that RPC's per-step totals. */
  byRpc: Record<string, WireByRpc>;
}

/** Median per field of each RPC's per-step totals (steps where it was not called count as 0). */
function medianByRpc(records: StepMetrics[]): Record<string, WireByRpc> {
  const names = [...new Set(records.flatMap((r) => Object.keys(r.wire_by_rpc ?? {})))].sort();
  const fields = [
    "calls",
    "wall_ms",
    "server_ms",
    "wire_ms",
    "encode_ms",
    "decode_ms",
    "server_pre_ms",
    "bytes_sent",
    "bytes_received",
  ] as const;
  return Object.fromEntries(names.map((n) => [
    n,
    Object.fromEntries(
      fields.map((f) => [f, median(records.map((r) => r.wire_by_rpc?.[n]?.[f] ?? 0))]),
    ) as unknown as WireByRpc,
  ]));
}

/** The two sampling paths, measured interleaved: the old one call per inference step, and lead steps. */
const PATHS = [
  { name: "before: one SampleCandidates per step", leadSteps: false, sessionStream: false },
  { name: "after: lead steps in the next call", leadSteps: true, sessionStream: false },
  { name: "after + Session stream: calls as messages", leadSteps: true, sessionStream: true },
] as const;

export async function runStepWireBench({ steps = 5, rounds = 2 } = {}): Promise<StepWireRow[]> {
  const tmp = await Deno.makeTempDir({ prefix: "rdpo-step-wire-" });
  const services = await stepServices();
  const { reward, policy } = services;
  const estimators = ["q", "delta_q"] as const;
  const collected = new Map<string, { records: StepMetrics[]; loads: number[] }>();
  let run = 0;
  try {
    await reward.start();
    await policy.start();
    // Rounds of (estimator x path), so both paths see the same machine load.
    for (let round = 0; round < rounds; round++) {
      for (const estimator of estimators) {
        for (const path of PATHS) {
          const runDir = join(tmp, `run-${run++}`);
          const config = stepConfig(services, {
            runDir,
            steps,
            estimator,
            sessionStream: path.sessionStream,
          });
          await train(config, {
            progress: "none",
            log: () => {},
            skipEvaluation: true,
            sampleLeadSteps: path.leadSteps,
          });
          const records = (await readMetrics(join(runDir, "metrics.jsonl")))
            .filter((r): r is StepMetrics => r.type === "step")
            .slice(1); // the first step of a run warms connections and JIT
          const key = `${estimator}|${path.name}`;
          const c = collected.get(key) ?? { records: [], loads: [] };
          c.records.push(...records);
          c.loads.push(Deno.loadavg()[0]);
          collected.set(key, c);
        }
      }
    }
  } finally {
    await policy.stop().catch(() => {});
    await reward.stop().catch(() => {});
    await Deno.remove(tmp, { recursive: true });
    await services.remove();
  }
  const rows: StepWireRow[] = [];
  for (const estimator of estimators) {
    for (const path of PATHS) {
      const { records, loads } = collected.get(`${estimator}|${path.name}`)!;
      const of = (f: (r: StepMetrics) => number) => median(records.map(f));
      rows.push({
        setup: `tiny model, K=3, T=4, fine-tune steps [0, 2], 2 prompts, estimator ${estimator}`,
        path: path.name,
        steps: records.length,
        rpcs: of((r) => r.rpcs ?? NaN),
        streamMessages: of((r) => r.rpcs_by_stream ?? 0),
        bytesSent: of((r) => r.wire_bytes_sent ?? NaN),
        bytesReceived: of((r) => r.wire_bytes_received ?? NaN),
        wireMs: of((r) => r.wire_ms),
        wireMsRange: [Math.min(...records.map((r) => r.wire_ms)), Math.max(...records.map((r) => r.wire_ms))],
        stepMs: of((r) => r.step_seconds * 1000),
        load: median(loads),
        byRpc: medianByRpc(records),
      });
    }
  }
  return rows;
}

export function formatStepWireBench(rows: StepWireRow[]): string {
  const kib = (n: number) => (n / 1024).toFixed(1);
  return [
    "| setup | path | steps measured | calls/step | of them stream messages | KiB sent/step | KiB received/step | wire ms/step (range) | wire ms per RPC | step ms | goal <= 15 ms | load |",
    "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |",
    ...rows.map((r) =>
      `| ${r.setup} | ${r.path} | ${r.steps} | ${r.rpcs} | ${r.streamMessages} | ${kib(r.bytesSent)} | ${
        kib(r.bytesReceived)
      } | ` +
      `${r.wireMs.toFixed(1)} (${r.wireMsRange[0].toFixed(1)}-${r.wireMsRange[1].toFixed(1)}) | ` +
      `${(r.wireMs / r.rpcs).toFixed(2)} | ${r.stepMs.toFixed(0)} | ${
        r.wireMs <= 15 ? "met" : "not met"
      } | ` +
      `${r.load.toFixed(2)} |`
    ),
  ].join("\n");
}

/**
 * Where each RPC's wire time goes (medians per step): client protobuf encode and decode, the
 * server's decode + dispatch before its handler, and the rest (grpc-js on both ends, HTTP/2,
 * loopback, event-loop turns), which is what is left of wall - handler - those.
 */
export function formatWireBreakdown(rows: StepWireRow[]): string {
  const f = (v: number) => v.toFixed(2);
  const lines = [
    "| estimator | path | RPC | calls/step | wall ms | server handler ms | wire ms | client encode | client decode | server decode+dispatch | transport (rest) | KiB sent | KiB received |",
    "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
  ];
  for (const r of rows) {
    const estimator = r.setup.match(/estimator (\S+)/)?.[1] ?? r.setup;
    for (const [name, b] of Object.entries(r.byRpc)) {
      const rest = b.wire_ms - b.encode_ms - b.decode_ms - b.server_pre_ms;
      lines.push(
        `| ${estimator} | ${r.path.split(":")[0]} | ${name} | ${b.calls} | ${f(b.wall_ms)} | ${
          f(b.server_ms)
        } | ${f(b.wire_ms)} | ` +
          `${f(b.encode_ms)} | ${f(b.decode_ms)} | ${f(b.server_pre_ms)} | ${f(rest)} | ` +
          `${(b.bytes_sent / 1024).toFixed(1)} | ${(b.bytes_received / 1024).toFixed(1)} |`,
      );
    }
  }
  return lines.join("\n");
}

export const STEP_WIRE_BENCH_FLAGS = {
  steps: {
    type: "int",
    default: 5,
    min: 2,
    description: "training steps per run (the first is a warm-up, left out of the medians)",
  },
  rounds: {
    type: "int",
    default: 2,
    min: 1,
    description: "interleaved rounds of (estimator x path) runs",
  },
} as const satisfies FlagSpecs;

export const STEP_WIRE_BENCH_COMMAND: CommandSpec<typeof STEP_WIRE_BENCH_FLAGS> = {
  name: "bench/step_wire_bench.ts",
  summary: "RPCs, message bytes and wire time of whole RDPO steps against real service processes (a table)",
  flags: STEP_WIRE_BENCH_FLAGS,
  examples: ["deno run -A bench/step_wire_bench.ts", "deno run -A bench/step_wire_bench.ts --steps 3"],
  async run(values) {
    const rows = await runStepWireBench({ steps: values.steps, rounds: values.rounds });
    console.log(formatStepWireBench(rows));
    console.log();
    console.log(formatWireBreakdown(rows));
    Deno.exit(0);
  },
};

if (import.meta.main) await runCommand(STEP_WIRE_BENCH_COMMAND);
