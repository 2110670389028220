/**
 * Sends hostile messages (hostile.ts) to every unary and server-streaming method of a service, and
 * as frames of its Session stream (session.ts: each frame's inner call is answered by a per-call
 * error or result; an INTERNAL/UNKNOWN one is a finding like a unary call's), over
 * a plain grpc-js channel and tallies the status codes. INTERNAL and UNKNOWN are findings: every bad
 * input must get a status that names the field (INVALID_ARGUMENT, RESOURCE_EXHAUSTED, ...).
 */
import { type DescMethod, type DescService, fromBinary, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { Buffer } from "node:buffer";
import { wireMethod } from "../methods.ts";
import { isSessionMethod } from "../session.ts";
import { codeName } from "../status.ts";
import { hostileMessage, type HostileOptions, Rng } from "./hostile.ts";

export interface Finding {
  method: string;
  code: string;
  /** The server's details, cut to 300 characters. */
  details: string;
  /** Seed and call index that reproduce it (`deno task fuzz --seed S --from I --calls 1`). */
  seed: number;
  call: number;
}

export interface FuzzResult {
  calls: number;
  /** Calls per status code name (OK included). */
  codes: Record<string, number>;
  /** Calls whose status was INTERNAL or UNKNOWN. */
  findings: Finding[];
  /** Longest echoed client string seen in any error message (characters). */
  longestDetails: number;
  /** The five slowest calls (method, call index, milliseconds, code): where to look for a DoS. */
  slowest: { method: string; call: number; ms: number; code: string }[];
}

export interface FuzzOptions extends HostileOptions {
  address: string;
  services: readonly DescService[];
  calls: number;
  seed: number;
  /** First call index (to replay one finding). */
  from?: number;
  /** Deadline per call (default 5000 ms). */
  timeoutMs?: number;
  /** Method names ("Service.Method") not to call. */
  skip?: readonly string[];
  /** Calls in flight at once (default 4). */
  concurrency?: number;
  onProgress?: (done: number) => void;
}

const raw = (b: Buffer) => b;
const BAD = new Set(["INTERNAL", "UNKNOWN"]);

function callOnce(client: grpc.Client, method: DescMethod, body: Buffer, timeoutMs: number) {
  const { path } = wireMethod(method);
  const deadline = Date.now() + timeoutMs;
  return new Promise<{ code: number; details: string }>((resolve) => {
    if (method.methodKind === "unary") {
      client.makeUnaryRequest(path, raw, raw, body, { deadline }, (error) => {
        const e = error as grpc.ServiceError | null;
        resolve({ code: e ? e.code : 0, details: e?.details ?? "" });
      });
      return;
    }
    if (method.methodKind === "bidi_streaming") {
      // A Session stream carrying the hostile frame: the worst per-call error answered on it
      // counts when the stream itself ends OK.
      const stream = client.makeBidiStreamRequest(path, raw, raw, new grpc.Metadata(), { deadline });
      let inner: { code: number; details: string } | undefined;
      stream.on("data", (bytes: Buffer) => {
        const m = fromBinary(method.output, bytes) as unknown as {
          result: { case: string | undefined; value?: { code: number; message: string } };
        };
        if (m.result.case === "error" && m.result.value && BAD.has(codeName(m.result.value.code))) {
          inner = { code: m.result.value.code, details: m.result.value.message };
        }
      });
      stream.on("error", () => {/* the status carries it */});
      stream.on(
        "status",
        (s: grpc.StatusObject) =>
          resolve(s.code === 0 && inner ? inner : { code: s.code, details: s.details }),
      );
      stream.write(body);
      stream.end();
      return;
    }
    const stream = client.makeServerStreamRequest(path, raw, raw, body, { deadline });
    let seen = 0;
    stream.on("data", () => {
      if (++seen >= 1) stream.cancel(); // a live stream (Watch, progress): its first message is enough
    });
    stream.on("error", () => {/* the status carries it */});
    stream.on("status", (s: grpc.StatusObject) => resolve({ code: s.code, details: s.details }));
  });
}

export async function fuzzService(options: FuzzOptions): Promise<FuzzResult> {
  const skip = new Set(options.skip ?? []);
  const methods = options.services.flatMap((s) =>
    s.methods.filter((m) =>
      (m.methodKind === "unary" || m.methodKind === "server_streaming" || isSessionMethod(m)) &&
      !skip.has(`${s.name}.${m.name}`)
    )
  );
  if (methods.length === 0) throw new Error("fuzz: no method to call");
  const client = new grpc.Client(options.address, grpc.credentials.createInsecure(), {
    "grpc.max_receive_message_length": 256 << 20,
    "grpc.max_send_message_length": 256 << 20,
  });
  const result: FuzzResult = { calls: 0, codes: {}, findings: [], longestDetails: 0, slowest: [] };
  const from = options.from ?? 0;
  let next = from;
  const end = from + options.calls;
  const worker = async () => {
    while (next < end) {
      const i = next++;
      // One generator per call index: any call replays alone from (seed, index).
      const rng = new Rng((options.seed * 1_000_003 + i) >>> 0);
      const method = rng.pick(methods);
      const message = hostileMessage(rng, method.input, options);
      const body = Buffer.from(toBinary(method.input, message as never));
      const started = performance.now();
      const { code, details } = await callOnce(client, method, body, options.timeoutMs ?? 5000);
      const ms = performance.now() - started;
      const name = codeName(code);
      result.slowest.push({
        method: `${method.parent.name}.${method.name}`,
        call: i,
        ms: Math.round(ms),
        code: name,
      });
      result.slowest.sort((a, b) => b.ms - a.ms).splice(5);
      result.calls++;
      result.codes[name] = (result.codes[name] ?? 0) + 1;
      result.longestDetails = Math.max(result.longestDetails, details.length);
      if (BAD.has(name)) {
        result.findings.push({
          method: `${method.parent.name}.${method.name}`,
          code: name,
          details: details.slice(0, 300),
          seed: options.seed,
          call: i,
        });
      }
      options.onProgress?.(result.calls);
    }
  };
  try {
    await Promise.all(Array.from({ length: options.concurrency ?? 4 }, worker));
  } finally {
    client.close();
  }
  return result;
}
