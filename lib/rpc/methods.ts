/**
 * grpc-js method definitions derived from protobuf-es v2 service descriptors (INFRA.md, "gRPC on
 * Deno"): path `/${service.typeName}/${method.name}`, (de)serializers from the method's input and
 * output schemas, streaming flags from `methodKind`. No per-method code is written by hand.
 */
import type { DescMessage, DescMethod, Message } from "@bufbuild/protobuf";
import { fromBinary } from "@bufbuild/protobuf";
import { Buffer } from "node:buffer";
import { encodeExact } from "./encode.ts";
import { wireTypeProblem } from "./wire_check.ts";

/**
 * What the server-side deserializer returns for a body that does not decode. grpc-js turns a
 * throwing deserializer into INTERNAL; the adapter instead returns this value and the handler
 * wrapper answers INVALID_ARGUMENT with `problem` (INFRA.md, "Status codes for bad input").
 */
export class DecodeFailure {
  constructor(readonly problem: string) {}
}

/** A Uint8Array as a Buffer over the same memory (grpc-js wants Buffers; no copy). */
export function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Message -> Buffer, in one exactly-sized allocation (encode.ts; same bytes as toBinary). */
export function encodeMessage(schema: DescMessage, message: Message): Buffer {
  return asBuffer(encodeExact(schema, message));
}

/**
 * Never throws: a body whose wire types disagree with the schema, or that protobuf-es cannot read,
 * becomes a DecodeFailure naming the message (and field where known). Bytes fields of the result
 * are views into `bytes` (protobuf-es reads them with subarray), so big tensors are not copied.
 */
export function decodeMessageSafely(schema: DescMessage, bytes: Uint8Array): Message | DecodeFailure {
  const problem = wireTypeProblem(schema, bytes);
  if (problem !== undefined) return new DecodeFailure(`does not decode: ${problem}`);
  try {
    return fromBinary(schema, bytes);
  } catch (e) {
    return new DecodeFailure(
      `does not decode as ${schema.typeName}: ${e instanceof Error ? e.message : String(e)}`,
    );
  }
}

/** One RPC of a service, as the adapter uses it on both sides. */
export interface WireMethod {
  readonly desc: DescMethod;
  /** `/${service.typeName}/${method.name}`, e.g. "/rdpo.v1.RewardService/Score". */
  readonly path: string;
  readonly requestStream: boolean;
  readonly responseStream: boolean;
}

export function methodPath(method: DescMethod): string {
  return `/${method.parent.typeName}/${method.name}`;
}

export function wireMethod(method: DescMethod): WireMethod {
  return {
    desc: method,
    path: methodPath(method),
    requestStream: method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming",
    responseStream: method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming",
  };
}
