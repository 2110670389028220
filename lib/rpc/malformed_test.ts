/**
 * Malformed request bodies sent with a raw grpc-js client (identity serializers) must be answered
 * INVALID_ARGUMENT (never INTERNAL), and the server must keep serving afterwards.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { Buffer } from "node:buffer";
import { Health, HealthCheckResponse_ServingStatus as Serving } from "../../gen/grpc/health/v1/health_pb.ts";
import {
  RewardService,
  RewardServiceSessionRequestSchema,
  ScoreRequestSchema,
} from "../../gen/rdpo/v1/reward_pb.ts";
import { DecodeFailure, decodeMessageSafely } from "./methods.ts";
import { TrainerService } from "../../gen/rdpo/v1/trainer_pb.ts";
import { assert, assertEquals } from "../testing/assert.ts";
import { Code, codeName } from "./status.ts";
import { startTestServer } from "./testing.ts";
import type { ImplOf } from "./types.ts";

/** Deterministic pseudo-random bytes (xorshift32), so a failure can be reproduced. */
function randomBytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

const valid = toBinary(
  ScoreRequestSchema,
  create(ScoreRequestSchema, {
    scorer: "echo",
    images: [{ width: 2, height: 2, channels: 3, data: new Uint8Array(12).fill(7) }],
    prompts: ["a cat"],
  }),
);

/** [name, body]: every body is invalid for rdpo.v1.ScoreRequest (Score, unary). */
const MALFORMED_SCORE: [string, Uint8Array][] = [
  ["random bytes (seed 1)", randomBytes(64, 1)],
  ["random bytes (seed 2)", randomBytes(257, 2)],
  ["random bytes (seed 3)", randomBytes(3, 3)],
  ["truncated protobuf (half)", valid.subarray(0, Math.floor(valid.length / 2))],
  ["truncated protobuf (last byte cut)", valid.subarray(0, valid.length - 1)],
  // protobuf-es alone would decode these into garbage instead of failing:
  ["string field sent as varint 0", new Uint8Array([0x08, 0x00])],
  ["message field sent as varint", new Uint8Array([0x10, 0x01])],
  ["string field sent as fixed64", new Uint8Array([0x09, 1, 2, 3, 4, 5, 6, 7, 8])],
  ["nested uint32 sent as length-delimited", new Uint8Array([0x12, 0x03, 0x0a, 0x01, 0x41])],
  ["field number 0", new Uint8Array([0x02, 0x00])],
  ["length past the end", new Uint8Array([0x0a, 0x7f, 0x61])],
  ["unterminated varint", new Uint8Array([0x08, 0xff, 0xff, 0xff])],
  ["end-group without start", new Uint8Array([0x0c])],
  ["wire type 7", new Uint8Array([0x0f])],
];

/** Invalid for rdpo.v1.StreamProgressRequest {string run_id = 1; uint64 from_step = 2} (streaming). */
const MALFORMED_PROGRESS: [string, Uint8Array][] = [
  ["random bytes (seed 1)", randomBytes(64, 1)],
  ["run_id sent as varint", new Uint8Array([0x08, 0x00])],
  ["from_step sent as length-delimited", new Uint8Array([0x12, 0x01, 0x00])],
  ["from_step sent as fixed32", new Uint8Array([0x15, 1, 2, 3, 4])],
  ["truncated run_id", new Uint8Array([0x0a, 0x05, 0x61, 0x62])],
];

const reward: ImplOf<typeof RewardService> = {
  score: (req) => ({ scores: req.images.map(() => 1) }),
  loadScorer: () => ({}),
  unloadScorer: () => ({}),
  setAlias: () => ({}),
  listScorers: () => ({}),
};

const trainer: ImplOf<typeof TrainerService> = {
  startRun: () => ({}),
  getRun: () => ({}),
  listRuns: () => ({}),
  stopRun: () => ({}),
  async *streamProgress() {
    yield {};
  },
};

const identity = (b: Buffer) => b;

function rawUnary(client: grpc.Client, path: string, body: Uint8Array): Promise<grpc.StatusObject> {
  return new Promise((resolve) => {
    client.makeUnaryRequest(path, identity, identity, Buffer.from(body), new grpc.Metadata(), {}, (err) => {
      resolve(
        err ? { code: err.code, details: err.details, metadata: err.metadata } : {
          code: Code.OK,
          details: "",
          metadata: new grpc.Metadata(),
        },
      );
    });
  });
}

function rawServerStream(client: grpc.Client, path: string, body: Uint8Array): Promise<grpc.StatusObject> {
  return new Promise((resolve) => {
    const call = client.makeServerStreamRequest(
      path,
      identity,
      identity,
      Buffer.from(body),
      new grpc.Metadata(),
    );
    call.on("data", () => {});
    call.on("error", () => {});
    call.on("status", (status: grpc.StatusObject) => resolve(status));
  });
}

Deno.test("malformed request bodies -> INVALID_ARGUMENT, and the server still answers health", async () => {
  const logged: unknown[] = [];
  const t = await startTestServer((s) => {
    s.addService(RewardService, reward);
    s.addService(TrainerService, trainer);
  }, { log: (message, error) => logged.push([message, error]) });
  const raw = new grpc.Client(t.address, grpc.credentials.createInsecure());
  try {
    const ok = await rawUnary(raw, "/rdpo.v1.RewardService/Score", valid);
    assertEquals(ok.code, Code.OK, "the valid body is accepted");
    for (const [name, body] of MALFORMED_SCORE) {
      const status = await rawUnary(raw, "/rdpo.v1.RewardService/Score", body);
      assertEquals(codeName(status.code), "INVALID_ARGUMENT", `Score, ${name}: ${status.details}`);
      assert(status.details.startsWith("request: "), `details name the request: ${status.details}`);
    }
    // The request of a server-streaming method goes through the same check.
    for (const [name, body] of MALFORMED_PROGRESS) {
      const status = await rawServerStream(raw, "/rdpo.v1.TrainerService/StreamProgress", body);
      assertEquals(codeName(status.code), "INVALID_ARGUMENT", `StreamProgress, ${name}: ${status.details}`);
    }
    assertEquals(logged, [], "bad input is not a server error");
    assertEquals((await t.client(Health).check({})).status, Serving.SERVING);
  } finally {
    raw.close();
    await t.close();
  }
});

Deno.test("the problem names the field whose wire type is wrong", async () => {
  const t = await startTestServer((s) => s.addService(RewardService, reward));
  const raw = new grpc.Client(t.address, grpc.credentials.createInsecure());
  try {
    const status = await rawUnary(
      raw,
      "/rdpo.v1.RewardService/Score",
      new Uint8Array([0x12, 0x03, 0x0a, 0x01, 0x41]),
    );
    assertEquals(
      status.details,
      "request: does not decode: rdpo.v1.ScoreRequest.images[0].width: sent as LengthDelimited, expected Varint",
    );
  } finally {
    raw.close();
    await t.close();
  }
});

/** A raw Session stream: writes `frames`, half-closes, resolves with the final status and messages. */
function rawSession(
  client: grpc.Client,
  path: string,
  frames: Uint8Array[],
): Promise<{ status: grpc.StatusObject; messages: number }> {
  return new Promise((resolve) => {
    const call = client.makeBidiStreamRequest(path, identity, identity, new grpc.Metadata());
    let messages = 0;
    call.on("data", () => messages++);
    call.on("error", () => {});
    call.on("status", (status: grpc.StatusObject) => resolve({ status, messages }));
    for (const f of frames) call.write(Buffer.from(f));
    call.end();
  });
}

/** RewardServiceSessionRequest {call_id = 1 (varint); score = 2 (ScoreRequest bytes)}. */
function sessionFrame(callId: number, score: Uint8Array): Uint8Array {
  const len: number[] = [];
  for (let n = score.length;; n >>>= 7) {
    if (n < 0x80) {
      len.push(n);
      break;
    }
    len.push((n & 0x7f) | 0x80);
  }
  return new Uint8Array([0x08, callId, 0x12, ...len, ...score]);
}

Deno.test("Session: a frame that does not decode ends the stream INVALID_ARGUMENT; the server goes on", async () => {
  const logged: unknown[] = [];
  const t = await startTestServer((s) => s.addService(RewardService, reward), {
    log: (message, error) => logged.push([message, error]),
  });
  const raw = new grpc.Client(t.address, grpc.credentials.createInsecure());
  const path = "/rdpo.v1.RewardService/Session";
  try {
    const ok = await rawSession(raw, path, [sessionFrame(1, valid), sessionFrame(2, valid)]);
    assertEquals(ok.status.code, Code.OK, ok.status.details);
    assertEquals(ok.messages, 2, "one answer per call");
    for (const [name, body] of MALFORMED_SCORE) {
      // Wrapped as the inner Score request of a frame: the whole frame does not decode.
      const wrapped = await rawSession(raw, path, [sessionFrame(1, valid), sessionFrame(3, body)]);
      assertEquals(codeName(wrapped.status.code), "INVALID_ARGUMENT", `inner score, ${name}`);
      assert(wrapped.status.details.startsWith("request: "), `names the request: ${wrapped.status.details}`);
      // The bad body alone as a frame: some of them happen to be valid Session frames (e.g.
      // [0x08, 0x00] is call_id 0), which must get a per-call error instead and the stream goes on.
      const alone = await rawSession(raw, path, [body]);
      if (decodeMessageSafely(RewardServiceSessionRequestSchema, body) instanceof DecodeFailure) {
        assertEquals(
          codeName(alone.status.code),
          "INVALID_ARGUMENT",
          `frame, ${name}: ${alone.status.details}`,
        );
      } else {
        assertEquals(codeName(alone.status.code), "OK", `frame, ${name}: ${alone.status.details}`);
        assertEquals(alone.messages, 1, `frame, ${name}: one (error) answer`);
      }
    }
    assertEquals(logged, [], "bad input is not a server error");
    assertEquals((await t.client(Health).check({})).status, Serving.SERVING);
    const after = await rawSession(raw, path, [sessionFrame(1, valid)]);
    assertEquals(after.status.code, Code.OK, "new streams are served");
  } finally {
    raw.close();
    await t.close();
  }
});
