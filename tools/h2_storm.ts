/**
 * HTTP/2 close-storm and connection-cycle load against a reward service in its own process
 * (upstream denoland/deno#36788: nghttp2 asserts `stream->closed_next == NULL` in
 * find_stream_on_goaway_func, exit 134, or dies with SIGSEGV, exit 139).
 *
 *   deno task storm                                    # 20 storms + 1000 cycles, as shipped
 *   deno task storm --storms 10 --cycles 0 --no-guard  # crash reproduction (without h2_guard.ts)
 *   deno task storm --supervised                       # with --transport supervised
 *
 * A storm: `clients` plain grpc-js channels (defaults, as an outside peer would use: nothing of
 * lib/rpc/client.ts, so not this project's guard either) each send `rounds` x `calls` Score
 * requests of `images` 512x512 images, then all channels close at once. A cycle: open a channel,
 * one call, close. After each storm the script checks that the server process is still alive; a
 * dead one is counted, reported with its exit status, and restarted so the run goes on. The last
 * line is `deaths: N` and the exit status is 1 if N > 0.
 */
import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Buffer } from "node:buffer";
import { ScoreRequestSchema, ScoreResponseSchema } from "../gen/rdpo/v1/reward_pb.ts";
import type { FlagSpecs } from "../lib/rpc/flags.ts";
import { type CommandSpec, runCommand } from "../lib/cli/command.ts";
import { type SpawnedService, spawnService } from "../lib/rpc/spawn.ts";

export const STORM_FLAGS = {
  storms: { type: "int", default: 20, min: 0, description: "close storms" },
  clients: { type: "int", default: 32, min: 1, description: "channels per storm" },
  rounds: { type: "int", default: 5, min: 1, description: "rounds of calls per channel per storm" },
  calls: { type: "int", default: 1, min: 1, description: "concurrent calls per channel per round" },
  images: { type: "int", default: 2, min: 1, description: "images per Score request" },
  side: { type: "int", default: 512, min: 1, max: 4096, description: "image width and height" },
  cycles: { type: "int", default: 1000, min: 0, description: "open/call/close cycles after the storms" },
  supervised: { type: "bool", default: false, description: "run the service with --transport supervised" },
  guard: {
    type: "bool",
    default: true,
    description: "install lib/rpc/h2_guard.ts in the service (--no-guard: without it, the crash)",
  },
  timeoutMs: { type: "int", default: 120_000, min: 1000, description: "deadline of one Score call (ms)" },
} as const satisfies FlagSpecs;

function scoreBody(images: number, side: number): Buffer {
  const data = new Uint8Array(side * side * 3);
  for (let i = 0; i < data.length; i++) data[i] = (i * 2654435761) >>> 24;
  const request = create(ScoreRequestSchema, {
    scorer: "colorfulness",
    images: Array.from({ length: images }, () => ({ width: side, height: side, channels: 3, data })),
  });
  return Buffer.from(toBinary(ScoreRequestSchema, request));
}

const CHANNEL_OPTIONS = {
  "grpc.max_receive_message_length": 64 << 20,
  "grpc.max_send_message_length": 64 << 20,
};

/** One Score call on a plain grpc-js client; resolves with the status code (0: OK). */
function score(client: grpc.Client, body: Buffer, timeoutMs: number): Promise<number> {
  return new Promise((resolve) => {
    client.makeUnaryRequest(
      "/rdpo.v1.RewardService/Score",
      (b: Buffer) => b,
      (b: Buffer) => fromBinary(ScoreResponseSchema, b),
      body,
      { deadline: Date.now() + timeoutMs },
      (error) => resolve(error ? (error as grpc.ServiceError).code ?? -1 : 0),
    );
  });
}

export interface StormResult {
  storms: number;
  cycles: number;
  calls: number;
  failedCalls: number;
  deaths: number;
  /** Failed calls by status code name. */
  failures: Record<string, number>;
  /** Transport restarts the service reported on stderr (supervised transport). */
  transportRestarts: number;
  /** Exit statuses of the dead server processes ("code 134", "signal SIGSEGV"). */
  exits: string[];
}

export interface StormOptions {
  storms: number;
  clients: number;
  rounds: number;
  calls: number;
  images: number;
  side: number;
  cycles: number;
  supervised: boolean;
  guard: boolean;
  timeoutMs: number;
  log?: (line: string) => void;
}

/** Runs the storms and cycles against a reward service it starts (and restarts after a death). */
export async function runStorm(options: StormOptions): Promise<StormResult> {
  const log = options.log ?? ((line: string) => console.error(line));
  const args = [
    "--host",
    "127.0.0.1",
    "--port",
    "0",
    "--max-images-per-request",
    String(Math.max(16, options.images)),
  ];
  if (options.supervised) args.push("--transport", "supervised");
  const env: Record<string, string> = options.guard ? {} : { RDPO_HTTP2_GUARD: "off" };
  const start = () => spawnService("services/reward/main.ts", args, { env });
  let service: SpawnedService = await start();
  const body = scoreBody(options.images, options.side);
  const result: StormResult = {
    storms: 0,
    cycles: 0,
    calls: 0,
    failedCalls: 0,
    failures: {},
    transportRestarts: 0,
    deaths: 0,
    exits: [],
  };
  const count = (code: number) => {
    result.calls++;
    if (code === 0) return;
    result.failedCalls++;
    const name = grpc.status[code] ?? String(code);
    result.failures[name] = (result.failures[name] ?? 0) + 1;
  };
  const restartsSoFar = () => (service.stderr().match(/starting another/g) ?? []).length;
  let restartsBefore = 0;
  const checkAlive = async (what: string) => {
    const exit = await service.exitedWithin(300);
    if (!exit) return;
    result.deaths++;
    result.exits.push(exit);
    restartsBefore += restartsSoFar();
    log(`  ${what}: server died (${exit}); restarting`);
    service = await start();
  };
  try {
    for (let s = 0; s < options.storms; s++) {
      const clients = Array.from(
        { length: options.clients },
        () => new grpc.Client(service.address, grpc.credentials.createInsecure(), CHANNEL_OPTIONS),
      );
      for (let r = 0; r < options.rounds; r++) {
        const codes = await Promise.all(
          clients.flatMap((c) =>
            Array.from({ length: options.calls }, () => score(c, body, options.timeoutMs))
          ),
        );
        codes.forEach(count);
      }
      for (const c of clients) c.close(); // all at once: the storm
      result.storms++;
      await checkAlive(`storm ${s + 1}`);
      log(`storm ${s + 1}/${options.storms}: ${result.calls} calls, ${result.deaths} deaths so far`);
    }
    for (let i = 0; i < options.cycles; i++) {
      const client = new grpc.Client(service.address, grpc.credentials.createInsecure(), CHANNEL_OPTIONS);
      const code = await score(client, body, options.timeoutMs);
      client.close();
      count(code);
      result.cycles++;
      if ((i + 1) % 100 === 0) {
        await checkAlive(`cycle ${i + 1}`);
        log(`cycles: ${i + 1}/${options.cycles}, ${result.deaths} deaths so far`);
      }
    }
    await checkAlive("end");
    result.transportRestarts = restartsBefore + restartsSoFar();
  } finally {
    await service.stop();
  }
  return result;
}

export const STORM_COMMAND: CommandSpec<typeof STORM_FLAGS> = {
  name: "storm",
  summary: "HTTP/2 close storms + open/call/close cycles against a reward process; exit 1 on any death",
  description: "A storm: --clients plain grpc-js channels each send --rounds x --calls Score requests of\n" +
    "--images images, then all close at once. A cycle: open a channel, one call, close. A dead server is\n" +
    "counted with its exit status and restarted; the last line is `deaths: N`, exit status 1 if N > 0.",
  flags: STORM_FLAGS,
  examples: [
    "deno task storm",
    "deno task storm --storms 10 --cycles 0 --no-guard",
  ],
  async run(values) {
    const result = await runStorm(values);
    console.log(
      `storms: ${result.storms}, cycles: ${result.cycles}, calls: ${result.calls}, ` +
        `failed calls: ${result.failedCalls} ${JSON.stringify(result.failures)}, ` +
        `transport: ${values.supervised ? "supervised" : "direct"}, guard: ${
          values.guard ? "on" : "off"
        }, transport restarts: ${result.transportRestarts}`,
    );
    if (result.exits.length) console.log(`exits: ${result.exits.join(", ")}`);
    console.log(`deaths: ${result.deaths}`);
    Deno.exit(result.deaths > 0 ? 1 : 0);
  },
};

if (import.meta.main) await runCommand(STORM_COMMAND);
