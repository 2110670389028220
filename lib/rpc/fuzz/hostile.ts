/**
 * Structure-aware hostile messages: well-formed protobuf built from a service's own protobuf-es
 * descriptor (every field of the right wire type, so the request decodes and reaches validation),
 * with values chosen to break handlers: negative and huge shapes and counts, byte lengths that
 * disagree with the shapes beside them, NaN and infinities, empty and enormous strings, path
 * traversal, out-of-range enums, deep nesting. Seeded: the same seed gives the same messages.
 */
import { create, type DescField, type DescMessage, type Message, ScalarType } from "@bufbuild/protobuf";

/** Small seeded PRNG (mulberry32): reproducible fuzz runs need no crypto strength. */
export class Rng {
  #s: number;
  constructor(seed: number) {
    this.#s = seed >>> 0;
  }
  next(): number {
    let t = (this.#s = (this.#s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
}

export const HOSTILE_STRINGS: readonly string[] = [
  "",
  " ",
  "../../../../etc/passwd",
  "/etc/passwd",
  "..",
  "a/../../b",
  "\u0000",
  "x\u0000y",
  "%s%s%n",
  "${jndi:ldap://x}",
  "\u202e\ufeff\ud83d\ude00",
  "colorfulness",
  "jpeg_compressibility",
  "adapter.safetensors",
  "-1",
  "NaN",
];

function hostileString(rng: Rng): string {
  const r = rng.next();
  if (r < 0.1) return "x".repeat(5000);
  if (r < 0.13) return "y".repeat(70_000 + rng.int(1000)); // over PATH_MAX, over any name limit
  if (r < 0.18) return "../".repeat(200) + "etc/passwd";
  return rng.pick(HOSTILE_STRINGS);
}

const INT32 = [0, 1, -1, 2, 3, 4, 7, 64, 512, 4096, 65535, 2 ** 31 - 1, -(2 ** 31)];
const UINT32 = [0, 1, 2, 3, 4, 8, 64, 512, 4096, 65535, 2 ** 24, 2 ** 32 - 1];
const DOUBLES = [0, -0, 1, -1, 0.5, 1e-300, 1e300, Number.NaN, Infinity, -Infinity, 7.5, 1000];

function hostileScalar(rng: Rng, type: ScalarType, maxBytes: number): unknown {
  switch (type) {
    case ScalarType.STRING:
      return hostileString(rng);
    case ScalarType.BOOL:
      return rng.chance(0.5);
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return rng.pick(DOUBLES);
    case ScalarType.BYTES: {
      const r = rng.next();
      const n = r < 0.3 ? 0 : r < 0.6 ? rng.int(64) : r < 0.9 ? rng.int(70_000) : rng.int(maxBytes);
      const b = new Uint8Array(n);
      for (let i = 0; i < Math.min(n, 4096); i++) b[i] = rng.int(256);
      return b;
    }
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      return BigInt(rng.pick([...INT32, Number.MAX_SAFE_INTEGER, -Number.MAX_SAFE_INTEGER]));
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return BigInt(rng.pick([...UINT32, Number.MAX_SAFE_INTEGER])) + (rng.chance(0.05) ? 2n ** 63n : 0n);
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return rng.pick(UINT32);
    default: // INT32, SINT32, SFIXED32
      return rng.pick(INT32);
  }
}

export interface HostileOptions {
  /** Deepest nesting of message fields (default 4). */
  maxDepth?: number;
  /** Largest single bytes field (default 4 MiB). */
  maxBytes?: number;
}

function repeatCount(rng: Rng): number {
  const r = rng.next();
  return r < 0.25 ? 0 : r < 0.6 ? 1 : r < 0.85 ? 2 + rng.int(3) : rng.int(40);
}

/** A message of `schema` with hostile values in a random subset of its fields. */
export function hostileMessage<T extends DescMessage>(
  rng: Rng,
  schema: T,
  options: HostileOptions = {},
  depth = 0,
): Message {
  const maxDepth = options.maxDepth ?? 4;
  const maxBytes = options.maxBytes ?? 4 * 1024 * 1024;
  const init: Record<string, unknown> = {};
  const value = (field: DescField & { fieldKind: "scalar" | "enum" | "message" } | DescField): unknown => {
    if (field.fieldKind === "scalar") return hostileScalar(rng, field.scalar, maxBytes);
    if (field.fieldKind === "enum") {
      return rng.chance(0.15) ? 999 : rng.pick(field.enum.values).number;
    }
    if (field.fieldKind === "message") {
      return depth >= maxDepth
        ? create(field.message)
        : hostileMessage(rng, field.message, options, depth + 1);
    }
    return undefined;
  };
  const oneofsSet = new Set<string>();
  for (const field of schema.fields) {
    if (rng.chance(0.2)) continue; // leave some fields unset (zero values are hostile too)
    if (field.oneof) {
      if (oneofsSet.has(field.oneof.localName)) continue;
      oneofsSet.add(field.oneof.localName);
      const v = field.fieldKind === "message"
        ? (depth >= maxDepth ? create(field.message) : hostileMessage(rng, field.message, options, depth + 1))
        : field.fieldKind === "enum"
        ? rng.pick(field.enum.values).number
        : field.fieldKind === "scalar"
        ? hostileScalar(rng, field.scalar, maxBytes)
        : undefined;
      init[field.oneof.localName] = { case: field.localName, value: v };
      continue;
    }
    switch (field.fieldKind) {
      case "scalar":
      case "enum":
      case "message":
        init[field.localName] = value(field);
        break;
      case "list": {
        const n = field.listKind === "message" && depth >= maxDepth ? 0 : repeatCount(rng);
        const items: unknown[] = [];
        for (let i = 0; i < n; i++) {
          items.push(
            field.listKind === "scalar"
              ? hostileScalar(rng, field.scalar, maxBytes >> 4)
              : field.listKind === "enum"
              ? rng.pick(field.enum.values).number
              : hostileMessage(rng, field.message, { ...options, maxBytes: maxBytes >> 2 }, depth + 1),
          );
        }
        init[field.localName] = items;
        break;
      }
      case "map": {
        const m: Record<string, unknown> = {};
        for (let i = 0, n = repeatCount(rng); i < n; i++) {
          const key = field.mapKey === ScalarType.STRING ? hostileString(rng) : String(rng.pick(UINT32));
          m[key] = field.mapKind === "scalar"
            ? hostileScalar(rng, field.scalar, 1024)
            : field.mapKind === "enum"
            ? rng.pick(field.enum.values).number
            : depth >= maxDepth
            ? create(field.message)
            : hostileMessage(rng, field.message, options, depth + 1);
        }
        init[field.localName] = m;
        break;
      }
    }
  }
  return create(schema, init as never);
}
