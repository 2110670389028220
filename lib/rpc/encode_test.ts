/**
 * encodeExact must produce exactly the bytes of protobuf-es' toBinary: random messages of every
 * message type in the project's protos (and the vendored gRPC ones), plus edge values.
 */
import { create, type DescField, type DescMessage, ScalarType, toBinary } from "@bufbuild/protobuf";
import { file_grpc_health_v1_health } from "../../gen/grpc/health/v1/health_pb.ts";
import { file_grpc_reflection_v1_reflection } from "../../gen/grpc/reflection/v1/reflection_pb.ts";
import { file_rdpo_v1_policy } from "../../gen/rdpo/v1/policy_pb.ts";
import { file_rdpo_v1_reward } from "../../gen/rdpo/v1/reward_pb.ts";
import { file_rdpo_v1_tensor, TensorSchema } from "../../gen/rdpo/v1/tensor_pb.ts";
import { file_rdpo_v1_trainer, StreamProgressResponseSchema } from "../../gen/rdpo/v1/trainer_pb.ts";
import { assertEquals } from "../testing/assert.ts";
import { encodeExact } from "./encode.ts";

/** Small deterministic PRNG (mulberry32). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const STRINGS = ["", "a", "scorer@v1", "héllo", "猫", "🐱 emoji", "\ud800 lone", "x".repeat(200)];

function randomScalar(type: ScalarType, r: () => number): unknown {
  const pick = <T>(xs: T[]) => xs[Math.floor(r() * xs.length)];
  switch (type) {
    case ScalarType.DOUBLE:
      return pick([0, -0, 1.5, -3e300, Number.MIN_VALUE, NaN, Infinity, r()]);
    case ScalarType.FLOAT:
      return pick([0, 1.5, -2.25, 3.4e38, r()]);
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return pick([0, 1, -1, 127, 128, -2147483648, 2147483647, Math.floor(r() * 1e6)]);
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return pick([0, 1, 127, 128, 16384, 4294967295, Math.floor(r() * 1e9)]);
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      return pick([0n, 1n, -1n, 2n ** 63n - 1n, -(2n ** 63n), 300n, BigInt(Math.floor(r() * 1e15))]);
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return pick([0n, 1n, 2n ** 64n - 1n, 2n ** 32n, BigInt(Math.floor(r() * 1e15))]);
    case ScalarType.BOOL:
      return r() < 0.5;
    case ScalarType.STRING:
      return pick(STRINGS);
    case ScalarType.BYTES:
      return Uint8Array.from({ length: pick([0, 1, 3, 200, 70000]) }, (_, i) => (i * 7) & 0xff);
  }
}

function randomEnum(field: { enum: { values: { number: number }[] } }, r: () => number): number {
  const values = field.enum.values.map((v) => v.number);
  return r() < 0.1 ? 99 : values[Math.floor(r() * values.length)];
}

function randomInit(desc: DescMessage, r: () => number, depth: number): Record<string, unknown> {
  const init: Record<string, unknown> = {};
  const value = (f: DescField): unknown => {
    if (f.fieldKind === "scalar") return randomScalar(f.scalar, r);
    if (f.fieldKind === "enum") return randomEnum(f, r);
    if (f.fieldKind === "message") return randomInit(f.message, r, depth + 1);
    return undefined;
  };
  for (const f of desc.fields) {
    if (r() < 0.35) continue;
    if (f.oneof) {
      if (init[f.oneof.localName] === undefined && (f.fieldKind !== "message" || depth < 3)) {
        init[f.oneof.localName] = { case: f.localName, value: value(f) };
      }
      continue;
    }
    switch (f.fieldKind) {
      case "scalar":
      case "enum":
        init[f.localName] = value(f);
        break;
      case "message":
        if (depth < 3) init[f.localName] = value(f);
        break;
      case "list": {
        const n = Math.floor(r() * 4);
        init[f.localName] = Array.from(
          { length: n },
          () =>
            f.listKind === "scalar"
              ? randomScalar(f.scalar, r)
              : f.listKind === "enum"
              ? randomEnum(f, r)
              : depth < 3
              ? randomInit(f.message, r, depth + 1)
              : {},
        );
        break;
      }
      case "map": {
        const record: Record<string, unknown> = {};
        for (let i = Math.floor(r() * 3); i > 0; i--) {
          const key = String(randomScalar(f.mapKey, r));
          record[key] = f.mapKind === "scalar"
            ? randomScalar(f.scalar, r)
            : f.mapKind === "enum"
            ? randomEnum(f, r)
            : randomInit(f.message, r, depth + 1);
        }
        init[f.localName] = record;
        break;
      }
    }
  }
  return init;
}

function allMessages(): DescMessage[] {
  const out: DescMessage[] = [];
  const visit = (m: DescMessage) => {
    out.push(m);
    m.nestedMessages.forEach(visit);
  };
  for (
    const file of [
      file_rdpo_v1_tensor,
      file_rdpo_v1_policy,
      file_rdpo_v1_reward,
      file_rdpo_v1_trainer,
      file_grpc_health_v1_health,
      file_grpc_reflection_v1_reflection,
    ]
  ) file.messages.forEach(visit);
  return out;
}

Deno.test("encodeExact == toBinary on random messages of every message type", () => {
  const messages = allMessages();
  let checked = 0;
  for (const desc of messages) {
    for (let seed = 1; seed <= 25; seed++) {
      const message = create(desc, randomInit(desc, rng(seed * 7919 + desc.typeName.length), 0) as never);
      const expected = toBinary(desc, message);
      assertEquals(encodeExact(desc, message), expected, `${desc.typeName} seed ${seed}`);
      checked++;
    }
  }
  assertEquals(checked, messages.length * 25);
});

Deno.test("encodeExact keeps unknown fields, empty messages and large payloads", () => {
  const t = create(TensorSchema, {
    dtype: 1,
    shape: [2n, 4n, 64n, 64n],
    data: new Uint8Array(131072).fill(3),
  });
  t.$unknown = [{ no: 99, wireType: 0, data: new Uint8Array([0x05]) }];
  assertEquals(encodeExact(TensorSchema, t), toBinary(TensorSchema, t));
  const empty = create(StreamProgressResponseSchema);
  assertEquals(encodeExact(StreamProgressResponseSchema, empty), new Uint8Array(0));
});
