/**
 * What transport security and tokens cost (SECURITY.md): plaintext, TLS, mutual TLS, and mutual
 * TLS with a bearer token checked per call, on loopback in one process. Two numbers per mode: a
 * new channel's first call (TCP + TLS handshake + HTTP/2 setup + one small call), and one call on
 * a warm channel carrying a 512x512 RGB image (786 KiB) to a handler that only counts it.
 * Needs openssl (the certificate chain is made for the run). Every mode runs twice; the second
 * pass is reported.
 *
 *   deno run -A bench/security_bench.ts [--channels 10] [--calls 30]
 */
import { RewardService } from "../gen/rdpo/v1/reward_pb.ts";
import { type CommandSpec, runCommand } from "../lib/cli/command.ts";
import type { FlagSpecs } from "../lib/rpc/flags.ts";
import { authMiddleware, TokenTable } from "../lib/rpc/auth.ts";
import { accessOf } from "../lib/rpc/access.ts";
import { createClient } from "../lib/rpc/client.ts";
import { openClientSecurity, withSecurity } from "../lib/rpc/client_security.ts";
import { createServer } from "../lib/rpc/server.ts";
import { makeTestPki } from "../lib/rpc/testing_tls.ts";
import { serverTls } from "../lib/rpc/tls.ts";

export interface SecurityBenchRow {
  mode: string;
  firstCallMs: number;
  warmCallMs: number;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

export async function runSecurityBench(options: { channels?: number; calls?: number } = {}): Promise<
  SecurityBenchRow[]
> {
  const channels = options.channels ?? 10;
  const calls = options.calls ?? 30;
  const dir = Deno.makeTempDirSync({ prefix: "rdpo-security-bench-" });
  const token = "bench-token-0123456789abcdef";
  const rows: SecurityBenchRow[] = [];
  try {
    const pki = makeTestPki(dir);
    const image = { width: 512, height: 512, channels: 3, data: new Uint8Array(512 * 512 * 3).fill(7) };
    const modes = [
      { mode: "plaintext", tls: false, mutual: false, tokens: false },
      { mode: "TLS", tls: true, mutual: false, tokens: false },
      { mode: "mutual TLS", tls: true, mutual: true, tokens: false },
      { mode: "mutual TLS + token", tls: true, mutual: true, tokens: true },
    ];
    // The first pass warms the JIT and the allocator; only the second is reported.
    for (const [pass, m] of [...modes.map((m) => [0, m] as const), ...modes.map((m) => [1, m] as const)]) {
      const tls = m.tls
        ? serverTls(
          {
            certFile: pki.serverCert,
            keyFile: pki.serverKey,
            clientCaFile: m.mutual ? pki.caCert : undefined,
          },
          { reloadIntervalMs: 0, log: () => {} },
        )
        : undefined;
      const table = new TokenTable([TokenTable.entry("bench", "read", token)]);
      const server = createServer({
        onCall: m.tokens ? [authMiddleware({ tokens: () => table, access: accessOf })] : [],
      });
      server.addService(RewardService, {
        score: (req) => ({ batchSize: req.images.length }),
        loadScorer: () => ({}),
        unloadScorer: () => ({}),
        setAlias: () => ({}),
        listScorers: () => ({}),
      });
      const { port } = await server.listen("127.0.0.1", 0, tls?.credentials);
      const target = `localhost:${port}`;
      const security = openClientSecurity({
        tls: m.tls,
        caFile: m.tls ? pki.caCert : undefined,
        certFile: m.mutual ? pki.clientCert : undefined,
        keyFile: m.mutual ? pki.clientKey : undefined,
        token: m.tokens ? token : undefined,
        reloadIntervalMs: 0,
      }, target);
      try {
        const first: number[] = [];
        for (let i = 0; i < channels; i++) {
          const client = createClient(RewardService, target, withSecurity({}, security));
          const t0 = performance.now();
          await client.listScorers({});
          first.push(performance.now() - t0);
          client.close();
        }
        const client = createClient(RewardService, target, withSecurity({}, security));
        await client.score({ images: [image] });
        const warm: number[] = [];
        for (let i = 0; i < calls; i++) {
          const t0 = performance.now();
          await client.score({ images: [image] });
          warm.push(performance.now() - t0);
        }
        client.close();
        if (pass === 1) rows.push({ mode: m.mode, firstCallMs: median(first), warmCallMs: median(warm) });
      } finally {
        security.close();
        server.forceShutdown();
        tls?.close();
      }
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
  return rows;
}

export function formatSecurityBench(rows: SecurityBenchRow[]): string {
  const base = rows[0];
  const lines = [
    "| mode | new channel + first call, median ms | warm call with 786 KiB, median ms | warm vs plaintext |",
    "|---|---:|---:|---:|",
  ];
  for (const r of rows) {
    lines.push(
      `| ${r.mode} | ${r.firstCallMs.toFixed(1)} | ${r.warmCallMs.toFixed(2)} | ${
        (r.warmCallMs / base.warmCallMs).toFixed(2)
      }x |`,
    );
  }
  return lines.join("\n");
}

export const SECURITY_BENCH_FLAGS = {
  channels: {
    type: "int",
    default: 10,
    min: 1,
    description: "new channels per mode (each: handshake + first call; median shown)",
  },
  calls: { type: "int", default: 30, min: 1, description: "warm 786 KiB calls per mode (median shown)" },
} as const satisfies FlagSpecs;

export const SECURITY_BENCH_COMMAND: CommandSpec<typeof SECURITY_BENCH_FLAGS> = {
  name: "bench/security_bench.ts",
  summary: "plaintext vs TLS vs mutual TLS (+ token): new-channel and warm-call cost on loopback (a table)",
  description: "Needs openssl (the certificate chain is made for the run).",
  flags: SECURITY_BENCH_FLAGS,
  examples: [
    "deno run -A bench/security_bench.ts",
    "deno run -A bench/security_bench.ts --channels 5 --calls 10",
  ],
  async run(values) {
    console.log(
      formatSecurityBench(await runSecurityBench({ channels: values.channels, calls: values.calls })),
    );
  },
};

if (import.meta.main) await runCommand(SECURITY_BENCH_COMMAND);
