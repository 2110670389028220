/**
 * Wire cost of SD1.5-shaped RDPO traffic through the generic gRPC adapter (lib/rpc) over loopback,
 * against calling the same handler in-process. Payloads:
 *   - PolicyService.PredictNoise: latents [2, 4, 64, 64] float32 (128 KiB) in, noise_pred of the
 *     same shape out;
 *   - RewardService.Score: two 512x512 RGB images (2 x 768 KiB) in, two scores out.
 * The handlers decode their inputs with lib/tensor/codec.ts (validation included) in every mode.
 * Modes:
 *   - in-process: the handler called with the message objects (no serialization at all);
 *   - in-process + protobuf: request encoded and decoded as the adapter does (encodeExact,
 *     fromBinary), handler, response likewise;
 *   - gRPC loopback: createClient -> 127.0.0.1 -> createServer (everything a real call does);
 *   - the same with HTTP/2's default flow-control window and frame size (flowControlWindowBytes 0).
 *
 *   deno run -A bench/wire_bench.ts [--iterations 200]
 */
import { create, type DescMessage, fromBinary, type MessageShape, toBinary } from "@bufbuild/protobuf";
import {
  PolicyService,
  type PredictNoiseRequest,
  PredictNoiseRequestSchema,
  type PredictNoiseResponse,
  PredictNoiseResponseSchema,
} from "../gen/rdpo/v1/policy_pb.ts";
import {
  RewardService,
  type ScoreRequest,
  ScoreRequestSchema,
  type ScoreResponse,
  ScoreResponseSchema,
} from "../gen/rdpo/v1/reward_pb.ts";
import { createClient } from "../lib/rpc/client.ts";
import { encodeExact } from "../lib/rpc/encode.ts";
import type { FlagSpecs } from "../lib/rpc/flags.ts";
import { type CommandSpec, runCommand } from "../lib/cli/command.ts";
import { createServer } from "../lib/rpc/server.ts";
import type { ImplOf } from "../lib/rpc/types.ts";
import { decodeFloat32, decodeImages, encodeImage, encodeTensor } from "../lib/tensor/codec.ts";

export interface WireBenchRow {
  payload: string;
  mode: string;
  requestBytes: number;
  responseBytes: number;
  p50Ms: number;
  meanMs: number;
  p95Ms: number;
  iterations: number;
}

const LATENT_SHAPE = [2, 4, 64, 64];

function latentsRequest(): PredictNoiseRequest {
  const n = LATENT_SHAPE.reduce((a, b) => a * b, 1);
  const latents = Float32Array.from({ length: n }, (_, i) => Math.sin(i));
  return create(PredictNoiseRequestSchema, {
    latents: encodeTensor(latents, LATENT_SHAPE),
    timesteps: [981n],
    guidanceScale: 7.5,
  });
}

function imagesRequest(): ScoreRequest {
  const image = () => encodeImage(512, 512, 3, Uint8Array.from({ length: 512 * 512 * 3 }, (_, i) => i * 31));
  return create(ScoreRequestSchema, {
    scorer: "bench",
    images: [image(), image()],
    prompts: ["a photo of a cat"],
  });
}

/** PredictNoise: validates latents, returns a noise prediction of the same shape (eps = -x/2). */
function predictNoise(request: PredictNoiseRequest): PredictNoiseResponse {
  const latents = decodeFloat32("latents", request.latents, { shape: [null, 4, null, null] });
  const eps = new Float32Array(latents.data.length);
  for (let i = 0; i < eps.length; i++) eps[i] = -0.5 * latents.data[i];
  return create(PredictNoiseResponseSchema, { noisePred: encodeTensor(eps, latents.shape) });
}

/** Score: validates the images, returns their mean byte value as the score. */
function score(request: ScoreRequest): ScoreResponse {
  const images = decodeImages("images", request.images, { maxSide: 1024 });
  const scores = images.map((im) => {
    let sum = 0;
    for (let i = 0; i < im.data.length; i += 4096) sum += im.data[i];
    return sum / Math.ceil(im.data.length / 4096);
  });
  return create(ScoreResponseSchema, { scores, scorerName: "bench", batchSize: images.length });
}

function roundTripProto<I extends DescMessage, O extends DescMessage>(
  input: I,
  output: O,
  handler: (r: MessageShape<I>) => MessageShape<O>,
  request: MessageShape<I>,
): MessageShape<O> {
  const req = fromBinary(input, encodeExact(input, request));
  return fromBinary(output, encodeExact(output, handler(req)));
}

interface Stats {
  p50: number;
  mean: number;
  p95: number;
}

/**
 * Times every function `iterations` times, round-robin (one call of each per round), so a change
 * of machine load hits all modes alike (the machine is shared; sequential blocks were not
 * comparable). A warm-up of 10% runs first.
 */
async function measureInterleaved(iterations: number, fns: (() => unknown)[]): Promise<Stats[]> {
  const warmup = Math.max(5, Math.floor(iterations / 10));
  for (let i = 0; i < warmup; i++) for (const fn of fns) await fn();
  const times = fns.map(() => [] as number[]);
  for (let i = 0; i < iterations; i++) {
    for (let k = 0; k < fns.length; k++) {
      const t0 = performance.now();
      await fns[k]();
      times[k].push(performance.now() - t0);
    }
  }
  return times.map((t) => {
    t.sort((a, b) => a - b);
    const q = (p: number) => t[Math.min(t.length - 1, Math.floor(p * t.length))];
    return { p50: q(0.5), mean: t.reduce((a, b) => a + b, 0) / t.length, p95: q(0.95) };
  });
}

/** Runs every payload in every mode; `iterations` timed calls each (after a warm-up). */
export async function runWireBench(options: { iterations?: number } = {}): Promise<WireBenchRow[]> {
  const iterations = options.iterations ?? 200;
  const unused = () => {
    throw new Error("not used by the benchmark");
  };
  const policy = Object.fromEntries(
    PolicyService.methods.map((m) => [m.localName, unused]),
  ) as unknown as ImplOf<
    typeof PolicyService
  >;
  policy.predictNoise = predictNoise;
  const reward = Object.fromEntries(
    RewardService.methods.map((m) => [m.localName, unused]),
  ) as unknown as ImplOf<
    typeof RewardService
  >;
  reward.score = score;

  const limit = 64 * 1024 * 1024;
  const server = createServer({ maxReceiveMessageBytes: limit, maxSendMessageBytes: limit });
  server.addService(PolicyService, policy).addService(RewardService, reward);
  const { address } = await server.listen("127.0.0.1", 0);
  const policyClient = createClient(PolicyService, address);
  const rewardClient = createClient(RewardService, address);
  // The same adapter with HTTP/2's default 64 KiB window and 16 KiB frames, to show the tuning.
  const plain = createServer({
    maxReceiveMessageBytes: limit,
    maxSendMessageBytes: limit,
    flowControlWindowBytes: 0,
  });
  plain.addService(PolicyService, policy).addService(RewardService, reward);
  const plainAddress = (await plain.listen("127.0.0.1", 0)).address;
  const plainPolicy = createClient(PolicyService, plainAddress, { flowControlWindowBytes: 0 });
  const plainReward = createClient(RewardService, plainAddress, { flowControlWindowBytes: 0 });

  const rows: WireBenchRow[] = [];
  try {
    const cases = [
      {
        payload: "latents [2,4,64,64] f32 -> noise_pred",
        request: latentsRequest(),
        requestBytes: (r: PredictNoiseRequest) => toBinary(PredictNoiseRequestSchema, r).length,
        responseBytes: (r: PredictNoiseRequest) =>
          toBinary(PredictNoiseResponseSchema, predictNoise(r)).length,
        inProcess: (r: PredictNoiseRequest) => predictNoise(r),
        withProto: (r: PredictNoiseRequest) =>
          roundTripProto(PredictNoiseRequestSchema, PredictNoiseResponseSchema, predictNoise, r),
        grpc: (r: PredictNoiseRequest) => policyClient.predictNoise(r),
        grpcPlain: (r: PredictNoiseRequest) => plainPolicy.predictNoise(r),
      },
      {
        payload: "2 x 512x512 RGB images -> 2 scores",
        request: imagesRequest(),
        requestBytes: (r: ScoreRequest) => toBinary(ScoreRequestSchema, r).length,
        responseBytes: (r: ScoreRequest) => toBinary(ScoreResponseSchema, score(r)).length,
        inProcess: (r: ScoreRequest) => score(r),
        withProto: (r: ScoreRequest) => roundTripProto(ScoreRequestSchema, ScoreResponseSchema, score, r),
        grpc: (r: ScoreRequest) => rewardClient.score(r),
        grpcPlain: (r: ScoreRequest) => plainReward.score(r),
      },
    ] as const;
    for (const c of cases) {
      // deno-lint-ignore no-explicit-any
      const cc = c as any;
      const requestBytes = cc.requestBytes(cc.request);
      const responseBytes = cc.responseBytes(cc.request);
      const modes = [
        ["in-process (no serialization)", () => cc.inProcess(cc.request)],
        ["in-process + protobuf encode/decode", () => cc.withProto(cc.request)],
        ["gRPC loopback (generic adapter)", () => cc.grpc(cc.request)],
        ["gRPC loopback, HTTP/2 default window+frames", () => cc.grpcPlain(cc.request)],
      ] as const;
      const stats = await measureInterleaved(iterations, modes.map(([, fn]) => fn));
      modes.forEach(([mode], k) => {
        const { p50, mean, p95 } = stats[k];
        rows.push({
          payload: c.payload,
          mode,
          requestBytes,
          responseBytes,
          p50Ms: p50,
          meanMs: mean,
          p95Ms: p95,
          iterations,
        });
      });
    }
  } finally {
    for (const c of [policyClient, rewardClient, plainPolicy, plainReward]) c.close();
    await Promise.all([server.shutdown(1000), plain.shutdown(1000)]);
  }
  return rows;
}

/** Markdown table of the rows. */
export function formatWireBench(rows: WireBenchRow[]): string {
  const kib = (n: number) => `${(n / 1024).toFixed(1)} KiB`;
  const lines = [
    "| payload | mode | request | response | p50 ms | mean ms | p95 ms | n |",
    "|---|---|---:|---:|---:|---:|---:|---:|",
    ...rows.map((r) =>
      `| ${r.payload} | ${r.mode} | ${kib(r.requestBytes)} | ${kib(r.responseBytes)} | ${
        r.p50Ms.toFixed(3)
      } | ${r.meanMs.toFixed(3)} | ${r.p95Ms.toFixed(3)} | ${r.iterations} |`
    ),
  ];
  return lines.join("\n");
}

export const WIRE_BENCH_FLAGS = {
  iterations: { type: "int", default: 200, min: 1, description: "round trips per payload" },
} as const satisfies FlagSpecs;

export const WIRE_BENCH_COMMAND: CommandSpec<typeof WIRE_BENCH_FLAGS> = {
  name: "bench/wire_bench.ts",
  summary: "gRPC wire cost of SD1.5-shaped payloads on loopback vs in-process (a table)",
  flags: WIRE_BENCH_FLAGS,
  examples: ["deno run -A bench/wire_bench.ts --iterations 50"],
  async run(values) {
    const rows = await runWireBench({ iterations: values.iterations });
    console.log(`Deno ${Deno.version.deno}, ${navigator.hardwareConcurrency} cores, loopback 127.0.0.1\n`);
    console.log(formatWireBench(rows));
  },
};

if (import.meta.main) await runCommand(WIRE_BENCH_COMMAND);
