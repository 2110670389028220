/**
 * Structure-aware fuzzing of the three services, each in its own process (lib/rpc/fuzz/):
 *
 *   deno task fuzz --calls 10000 [--service reward|policy|trainer|all] [--seed 1] [--from I]
 *   deno task fuzz --help
 *
 * For each service: start it, read its RSS, send `calls` hostile requests (seeded), then check it
 * is alive, that health still answers SERVING, and its RSS after. Prints one table row per service
 * and every finding (INTERNAL/UNKNOWN) with the seed and call index that replay it
 * (`--seed S --from I --calls 1`). Exit status 1 on any finding, dead server or RSS over the bound.
 */
import type { DescService } from "@bufbuild/protobuf";
import { Health } from "../gen/grpc/health/v1/health_pb.ts";
import { PolicyService } from "../gen/rdpo/v1/policy_pb.ts";
import { RewardService } from "../gen/rdpo/v1/reward_pb.ts";
import { TrainerService } from "../gen/rdpo/v1/trainer_pb.ts";
import { createClient } from "../lib/rpc/client.ts";
import type { FlagSpecs } from "../lib/rpc/flags.ts";
import { type CommandSpec, runCommand } from "../lib/cli/command.ts";
import { type Finding, type FuzzResult, fuzzService } from "../lib/rpc/fuzz/runner.ts";
import { spawnService } from "../lib/rpc/spawn.ts";

export interface FuzzTarget {
  name: string;
  script: string;
  args: string[];
  services: DescService[];
  /** Methods not fuzzed, with why. */
  skip?: string[];
  env?: Record<string, string>;
  /** Working folder (relative run folders of a config land there). */
  cwd?: string;
}

/** The three services as the fuzzer starts them (loopback, free port, small model). */
export function fuzzTargets(adapterRoot: string): FuzzTarget[] {
  return [
    {
      name: "reward",
      script: "services/reward/main.ts",
      args: ["--port", "0"],
      services: [RewardService as unknown as DescService, Health as unknown as DescService],
      // Watch streams until cancelled; the runner stops after three messages, so it is fine.
    },
    {
      name: "policy",
      script: "services/policy/main.ts",
      args: ["--port", "0", "--model-dir", "models/tiny", "--adapter-root", adapterRoot, "--backend", "cpu"],
      services: [PolicyService as unknown as DescService, Health as unknown as DescService],
    },
    {
      name: "trainer",
      script: "services/trainer/main.ts",
      args: ["serve", "--port", "0"],
      services: [TrainerService as unknown as DescService, Health as unknown as DescService],
    },
  ];
}

/** Resident set size of a process in bytes (Linux /proc). */
export async function rssBytes(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const kb = /VmRSS:\s+(\d+)\s+kB/.exec(status);
  return kb ? Number(kb[1]) * 1024 : Number.NaN;
}

export interface TargetReport {
  service: string;
  calls: number;
  codes: Record<string, number>;
  findings: Finding[];
  alive: boolean;
  serving: boolean;
  rssBeforeMiB: number;
  rssAfterMiB: number;
  longestDetails: number;
  seconds: number;
  slowest: FuzzResult["slowest"];
  /** The end of the server's stderr when there were findings (what the INTERNAL errors logged). */
  serverLog: string;
}

/** RSS after may exceed RSS before by at most this (allocator high-water marks, JIT code). */
export const RSS_BOUND_MIB = 512;

export async function fuzzTarget(
  target: FuzzTarget,
  calls: number,
  seed: number,
  from = 0,
  onProgress?: (done: number) => void,
): Promise<TargetReport> {
  const started = performance.now();
  const service = await spawnService(target.script, [...target.args, "--host", "127.0.0.1"], {
    env: target.env,
    cwd: target.cwd,
  });
  try {
    const before = await rssBytes(service.pid);
    const result = await fuzzService({
      address: service.address,
      services: target.services,
      calls,
      seed,
      from,
      skip: target.skip,
      onProgress,
    });
    const exit = await service.exitedWithin(200);
    let serving = false;
    let after = Number.NaN;
    if (!exit) {
      after = await rssBytes(service.pid);
      const health = createClient(Health, service.address);
      try {
        serving = (await health.check({}, { timeoutMs: 10_000 })).status === 1;
      } catch {
        serving = false;
      } finally {
        health.close();
      }
    }
    return {
      service: target.name,
      calls: result.calls,
      codes: result.codes,
      findings: result.findings,
      alive: !exit,
      serving,
      rssBeforeMiB: before / 2 ** 20,
      rssAfterMiB: after / 2 ** 20,
      longestDetails: result.longestDetails,
      slowest: result.slowest,
      serverLog: result.findings.length ? service.stderr().slice(-4000) : "",
      seconds: (performance.now() - started) / 1000,
    };
  } finally {
    await service.stop();
  }
}

export function formatReports(reports: TargetReport[]): string {
  const rows = [[
    "service",
    "calls",
    "INTERNAL/UNKNOWN",
    "alive",
    "serving",
    "RSS before",
    "RSS after",
    "longest msg",
    "s",
  ]];
  for (const r of reports) {
    rows.push([
      r.service,
      String(r.calls),
      String(r.findings.length),
      r.alive ? "yes" : "NO",
      r.serving ? "yes" : "NO",
      `${r.rssBeforeMiB.toFixed(0)} MiB`,
      `${r.rssAfterMiB.toFixed(0)} MiB`,
      String(r.longestDetails),
      r.seconds.toFixed(0),
    ]);
  }
  const widths = rows[0].map((_, c) => Math.max(...rows.map((row) => row[c].length)));
  const lines = rows.map((row) => row.map((cell, c) => cell.padEnd(widths[c])).join("  "));
  for (const r of reports) {
    lines.push(`${r.service} codes: ${JSON.stringify(r.codes)}`);
    lines.push(
      `${r.service} slowest: ${
        r.slowest.map((s) => `${s.method}#${s.call} ${s.ms} ms ${s.code}`).join(", ")
      }`,
    );
  }
  return lines.join("\n");
}

export function reportOk(r: TargetReport): boolean {
  return r.findings.length === 0 && r.alive && r.serving && r.rssAfterMiB - r.rssBeforeMiB <= RSS_BOUND_MIB;
}

export const FUZZ_FLAGS = {
  calls: { type: "int", default: 1000, min: 1, description: "hostile calls sent to each service" },
  seed: {
    type: "int",
    default: 1,
    min: 0,
    description: "seed of the hostile requests (a finding prints it)",
  },
  from: {
    type: "int",
    default: 0,
    min: 0,
    description: "index of the first call (replay a finding: --seed S --from I --calls 1)",
  },
  service: {
    type: "string",
    default: "all",
    choices: ["all", "reward", "policy", "trainer"],
    description: "the service to fuzz",
  },
} as const satisfies FlagSpecs;

export const FUZZ_COMMAND: CommandSpec<typeof FUZZ_FLAGS> = {
  name: "fuzz",
  summary: "structure-aware fuzzing of the services in their own processes; exit 1 on any finding",
  description: "For each service: start it, send --calls seeded hostile requests, then check it is alive,\n" +
    `that health answers SERVING and that its RSS grew by at most ${RSS_BOUND_MIB} MiB. Prints one row per\n` +
    "service and every INTERNAL/UNKNOWN finding with the flags that replay it. Exit status 1 on any\n" +
    "finding, a dead or not-serving server, or RSS over the bound.",
  flags: FUZZ_FLAGS,
  examples: [
    "deno task fuzz --calls 10000",
    "deno task fuzz --service policy --seed 3 --from 417 --calls 1",
  ],
  async run(values) {
    const tmp = await Deno.makeTempDir({ prefix: "rdpo-fuzz-" });
    const reports: TargetReport[] = [];
    try {
      for (const target of fuzzTargets(`${tmp}/adapters`)) {
        if (values.service !== "all" && values.service !== target.name) continue;
        const step = Math.max(1, Math.floor(values.calls / 10));
        const report = await fuzzTarget(target, values.calls, values.seed, values.from, (done) => {
          if (done % step === 0) console.error(`${target.name}: ${done}/${values.calls} calls`);
        });
        reports.push(report);
        if (report.serverLog) console.log(`--- ${target.name} stderr (end) ---\n${report.serverLog}\n---`);
        for (const f of report.findings) {
          console.log(
            `FINDING ${f.method} ${f.code} (--seed ${f.seed} --from ${f.call} --calls 1): ${f.details}`,
          );
        }
      }
    } finally {
      await Deno.remove(tmp, { recursive: true }).catch(() => {});
    }
    console.log(formatReports(reports));
    console.log(`RSS bound: after - before <= ${RSS_BOUND_MIB} MiB`);
    Deno.exit(reports.every(reportOk) ? 0 : 1);
  },
};

if (import.meta.main) await runCommand(FUZZ_COMMAND);
