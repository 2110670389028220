/**
 * The transport floor under the Session stream (issue 21): a bare grpc-js bidi stream between two
 * Deno processes, raw Buffers both ways (no protobuf, none of lib/rpc), one message in flight. The
 * server waits WORK ms per message before answering, either asleep or scanning 32 MiB of memory
 * (what a model pass does to the caches), and sends its own wait back; wire = wall - wait. Message
 * sizes as a step's (SampleCandidates ~3 KiB out / 3.6 KiB back, TrainStep 12 KiB out).
 *
 *   deno run -A bench/grpc_floor_probe.ts [--rounds 25]
 *
 * Run it under the shared CPU lock (flock /work/cpu.lock ...) when the numbers are quoted.
 */
import * as grpc from "@grpc/grpc-js";
import { Buffer } from "node:buffer";
import { parseArgs } from "node:util";

const identity = (b: Buffer) => b;
const definition = {
  echo: {
    path: "/probe.Floor/Echo",
    requestStream: true,
    responseStream: true,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  },
};

function serve(): void {
  const server = new grpc.Server();
  const junk = new Float64Array(4 << 20);
  server.addService(definition as never, {
    echo: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
      call.on("data", (b: Buffer) => {
        const workMs = b.readUInt32LE(0), responseBytes = b.readUInt32LE(4), trash = b.readUInt32LE(8);
        const t0 = performance.now();
        const answer = () => {
          const out = Buffer.alloc(Math.max(8, responseBytes));
          out.writeDoubleLE(performance.now() - t0, 0);
          call.write(out);
        };
        if (trash) {
          while (performance.now() - t0 < workMs) for (let i = 0; i < junk.length; i += 8) junk[i] += 1;
          answer();
        } else setTimeout(answer, workMs);
      });
      call.on("end", () => call.end());
    },
  });
  server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (_e, port) => {
    console.log(`listening on 127.0.0.1:${port}`);
  });
}

async function probe(rounds: number): Promise<void> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", import.meta.filename!, "--serve"],
    stdout: "piped",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  while (!out.includes("\n")) out += (await reader.read()).value ?? "";
  const address = out.match(/listening on (\S+)/)![1];
  const Client = grpc.makeGenericClientConstructor(definition as never, "Floor");
  const client = new Client(address, grpc.credentials.createInsecure()) as unknown as {
    echo: () => grpc.ClientDuplexStream<Buffer, Buffer>;
    close: () => void;
  };
  const stream = client.echo();
  const status = new Promise((resolve) => stream.on("status", resolve));
  stream.on("error", () => {});
  let onAnswer: ((b: Buffer) => void) | undefined;
  stream.on("data", (b: Buffer) => onAnswer?.(b));
  const call = (requestBytes: number, responseBytes: number, workMs: number, trash: boolean) =>
    new Promise<number>((resolve) => {
      const b = Buffer.alloc(Math.max(12, requestBytes));
      b.writeUInt32LE(workMs, 0);
      b.writeUInt32LE(responseBytes, 4);
      b.writeUInt32LE(trash ? 1 : 0, 8);
      const t0 = performance.now();
      onAnswer = (r) => resolve(performance.now() - t0 - r.readDoubleLE(0));
      stream.write(b);
    });
  const median = (a: number[]) => a.sort((x, y) => x - y)[a.length >> 1];
  for (let i = 0; i < 50; i++) await call(16, 16, 0, false); // JIT and connection warm-up
  const cases = [
    ["16 B both ways, back to back", 16, 16, 0, false],
    ["16 B, after 20 ms asleep", 16, 16, 20, false],
    ["3.1 KiB out / 3.6 KiB back, after 20 ms asleep", 3200, 3700, 20, false],
    ["16 B, after 20 ms of memory-scanning work", 16, 16, 20, true],
    ["3.1 KiB out / 3.6 KiB back, after 20 ms of work", 3200, 3700, 20, true],
    ["12.3 KiB out / 0.3 KiB back, after 20 ms of work", 12600, 300, 20, true],
  ] as const;
  console.log(`bench/grpc_floor_probe.ts: rounds=${rounds}, load ${Deno.loadavg()[0].toFixed(2)}\n`);
  console.log("| messages | wire ms per message (median) |\n| --- | ---: |");
  for (const [label, rq, rs, work, trash] of cases) {
    const wire: number[] = [];
    for (let i = 0; i < rounds; i++) wire.push(await call(rq, rs, work, trash));
    console.log(`| ${label} | ${median(wire).toFixed(3)} |`);
  }
  stream.end();
  await Promise.race([status, new Promise((r) => setTimeout(r, 1000))]);
  client.close();
  child.kill();
  await child.status;
}

const { values } = parseArgs({
  args: Deno.args,
  options: { serve: { type: "boolean", default: false }, rounds: { type: "string", default: "25" } },
});
if (values.serve) serve();
else {
  await probe(Number(values.rounds));
  Deno.exit(0);
}
