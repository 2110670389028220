/**
 * proto `rdpo.v1.Tensor` <-> typed arrays, with validation (lib/tensor/codec.ts re-exports it with the
 * image and tfjs codecs). Every problem is an InvalidArgumentError naming the field path the caller
 * passes in (e.g. "latents" -> "latents.shape: ..."); too many elements is a ResourceExhaustedError.
 *
 * Zero copy where possible: decoding float32/int32/int64/float64 data returns a typed-array VIEW on
 * the message's bytes when their offset is aligned to the element size (the result then shares
 * memory with the message), and copies otherwise. Encoding wraps the typed array's memory as the
 * `data` bytes without copying.
 */
import { create } from "@bufbuild/protobuf";
import { DataType, type Tensor, TensorSchema } from "../../gen/rdpo/v1/tensor_pb.ts";
import { InvalidArgumentError, ResourceExhaustedError } from "../errors.ts";
import { floatToHalf } from "./float16.ts";
import { halfToFloat } from "./safetensors.ts";

export { DataType };

// The wire format is little-endian; typed-array views use the platform's order.
if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
  throw new Error("lib/tensor/tensor_codec.ts assumes a little-endian platform");
}

/** Default upper bound on elements per tensor (2^28: 1 GiB of float32). */
export const DEFAULT_MAX_ELEMENTS = 2 ** 28;
/** Default upper bound on an image side, in pixels. */
export const DEFAULT_MAX_IMAGE_SIDE = 8192;

const BYTES: Record<DataType, number> = {
  [DataType.UNSPECIFIED]: 0,
  [DataType.FLOAT32]: 4,
  [DataType.FLOAT16]: 2,
  [DataType.INT32]: 4,
  [DataType.INT64]: 8,
  [DataType.UINT8]: 1,
  [DataType.BOOL]: 1,
  [DataType.FLOAT64]: 8,
};

/** "FLOAT32" for DataType.FLOAT32. */
export function dtypeName(dtype: DataType): string {
  return DataType[dtype] ?? `DataType(${dtype})`;
}

/** Bytes per element; throws for UNSPECIFIED and unknown values. */
export function dtypeSize(field: string, dtype: DataType): number {
  const size = BYTES[dtype];
  if (!size) {
    throw new InvalidArgumentError(
      `${field}.dtype`,
      dtype === DataType.UNSPECIFIED ? "not set" : `unknown dtype ${dtype}`,
    );
  }
  return size;
}

/** Element arrays a decoded tensor can hold (FLOAT16 is widened to Float32Array). */
export type TensorArray = Float32Array | Float64Array | Int32Array | BigInt64Array | Uint8Array;

export interface DecodedTensor<A extends TensorArray = TensorArray> {
  dtype: DataType;
  shape: number[];
  data: A;
}

export interface DecodeOptions {
  /** Accepted dtypes (default: any known one). */
  dtypes?: readonly DataType[];
  /** Expected shape pattern, null = any size (see expectShape). */
  shape?: readonly (number | null)[];
  /** More elements than this is RESOURCE_EXHAUSTED (default DEFAULT_MAX_ELEMENTS). */
  maxElements?: number;
  /** Accept NaN and +-Infinity in float data (default false). */
  allowNonFinite?: boolean;
}

/** Validated shape as numbers; checks each dim and the element count limit. */
export function tensorShape(
  field: string,
  shape: readonly bigint[],
  maxElements = DEFAULT_MAX_ELEMENTS,
): number[] {
  const dims: number[] = [];
  let count = 1;
  for (let i = 0; i < shape.length; i++) {
    const d = shape[i];
    if (d < 0n) throw new InvalidArgumentError(`${field}.shape[${i}]`, `negative dimension ${d}`);
    if (d > BigInt(maxElements)) {
      throw new ResourceExhaustedError(
        `${field}.shape[${i}]: dimension ${d} exceeds the limit of ${maxElements} elements`,
      );
    }
    dims.push(Number(d));
    count *= Number(d);
  }
  if (count > maxElements) {
    throw new ResourceExhaustedError(
      `${field}.shape: [${dims.join(", ")}] has ${count} elements, over the limit of ${maxElements}`,
    );
  }
  return dims;
}

export function elementCount(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

function formatPattern(pattern: readonly (number | null)[]): string {
  return `[${pattern.map((d) => (d === null ? "?" : String(d))).join(", ")}]`;
}

/**
 * Checks `shape` against `pattern` (null matches any size), e.g.
 * `expectShape("latents", [2, 4, 64, 64], [null, 4, null, null])`.
 */
export function expectShape(
  field: string,
  shape: readonly number[],
  pattern: readonly (number | null)[],
): void {
  const ok = shape.length === pattern.length && pattern.every((d, i) => d === null || d === shape[i]);
  if (!ok) {
    throw new InvalidArgumentError(
      `${field}.shape`,
      `expected ${formatPattern(pattern)}, got [${shape.join(", ")}]`,
    );
  }
}

/** A typed array of `Ctor` over `bytes`: a view when aligned, else an aligned copy. */
function view<A extends TensorArray>(
  Ctor: { new (buffer: ArrayBufferLike, offset: number, length: number): A; BYTES_PER_ELEMENT: number },
  bytes: Uint8Array,
  count: number,
): A {
  if (bytes.byteOffset % Ctor.BYTES_PER_ELEMENT === 0) return new Ctor(bytes.buffer, bytes.byteOffset, count);
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  return new Ctor(copy.buffer, 0, count);
}

function checkFinite(field: string, data: Float32Array | Float64Array): void {
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (v - v !== 0) {
      throw new InvalidArgumentError(
        `${field}.data`,
        `element ${i} is ${v} (NaN and Infinity are not allowed)`,
      );
    }
  }
}

/** Decodes and validates a proto Tensor (see the module comment on zero copy). */
export function decodeTensor(
  field: string,
  tensor: Tensor | undefined,
  options: DecodeOptions = {},
): DecodedTensor {
  if (!tensor) throw new InvalidArgumentError(field, "missing");
  const size = dtypeSize(field, tensor.dtype);
  if (options.dtypes && !options.dtypes.includes(tensor.dtype)) {
    throw new InvalidArgumentError(
      `${field}.dtype`,
      `expected ${options.dtypes.map(dtypeName).join(" or ")}, got ${dtypeName(tensor.dtype)}`,
    );
  }
  const shape = tensorShape(field, tensor.shape, options.maxElements);
  if (options.shape) expectShape(field, shape, options.shape);
  const count = elementCount(shape);
  const bytes = tensor.data;
  if (bytes.byteLength !== count * size) {
    throw new InvalidArgumentError(
      `${field}.data`,
      `${bytes.byteLength} bytes, expected ${count * size} for shape [${shape.join(", ")}] of ${
        dtypeName(tensor.dtype)
      }`,
    );
  }
  let data: TensorArray;
  switch (tensor.dtype) {
    case DataType.FLOAT32:
      data = view(Float32Array, bytes, count);
      break;
    case DataType.FLOAT64:
      data = view(Float64Array, bytes, count);
      break;
    case DataType.FLOAT16: {
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = halfToFloat(bytes[2 * i] | (bytes[2 * i + 1] << 8));
      data = out;
      break;
    }
    case DataType.INT32:
      data = view(Int32Array, bytes, count);
      break;
    case DataType.INT64:
      data = view(BigInt64Array, bytes, count);
      break;
    case DataType.UINT8:
      data = bytes;
      break;
    case DataType.BOOL:
      for (let i = 0; i < count; i++) {
        if (bytes[i] > 1) {
          throw new InvalidArgumentError(`${field}.data`, `element ${i} is ${bytes[i]}, not a bool (0 or 1)`);
        }
      }
      data = bytes;
      break;
    default:
      throw new InvalidArgumentError(`${field}.dtype`, `unknown dtype ${tensor.dtype}`);
  }
  if (!options.allowNonFinite && (data instanceof Float32Array || data instanceof Float64Array)) {
    checkFinite(field, data);
  }
  return { dtype: tensor.dtype, shape, data };
}

/**
 * A float tensor as Float32Array: FLOAT32 without copying when aligned; FLOAT16 and FLOAT64 are
 * converted. Other dtypes are rejected.
 */
export function decodeFloat32(
  field: string,
  tensor: Tensor | undefined,
  options: Omit<DecodeOptions, "dtypes"> = {},
): DecodedTensor<Float32Array> {
  const t = decodeTensor(field, tensor, {
    ...options,
    dtypes: [DataType.FLOAT32, DataType.FLOAT16, DataType.FLOAT64],
  });
  const data = t.data instanceof Float32Array ? t.data : Float32Array.from(t.data as Float64Array);
  return { dtype: t.dtype, shape: t.shape, data };
}

/** Integer tensor (INT32, INT64, UINT8) as numbers; INT64 values must be safe integers. */
export function decodeIntegers(
  field: string,
  tensor: Tensor | undefined,
  options: Omit<DecodeOptions, "dtypes"> = {},
): DecodedTensor<Int32Array | Float64Array> {
  const t = decodeTensor(field, tensor, {
    ...options,
    dtypes: [DataType.INT32, DataType.INT64, DataType.UINT8],
  });
  if (t.data instanceof Int32Array) return { dtype: t.dtype, shape: t.shape, data: t.data };
  if (t.data instanceof Uint8Array) return { dtype: t.dtype, shape: t.shape, data: Int32Array.from(t.data) };
  const src = t.data as BigInt64Array;
  const out = new Float64Array(src.length);
  for (let i = 0; i < src.length; i++) {
    const v = src[i];
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) {
      throw new InvalidArgumentError(
        `${field}.data`,
        `element ${i} (${v}) is outside the safe integer range`,
      );
    }
    out[i] = Number(v);
  }
  return { dtype: t.dtype, shape: t.shape, data: out };
}
function dtypeOfArray(data: TensorArray): DataType {
  if (data instanceof Float32Array) return DataType.FLOAT32;
  if (data instanceof Float64Array) return DataType.FLOAT64;
  if (data instanceof Int32Array) return DataType.INT32;
  if (data instanceof BigInt64Array) return DataType.INT64;
  return DataType.UINT8;
}

function asBytes(data: ArrayBufferView): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/**
 * A proto Tensor over `data`'s memory (no copy). The dtype follows the array type (Uint8Array ->
 * UINT8, or BOOL when `dtype` says so). Throws if the shape does not match the element count.
 */
export function encodeTensor(data: TensorArray, shape: readonly number[], dtype?: DataType): Tensor {
  const type = dtype ?? dtypeOfArray(data);
  const fits = type === DataType.BOOL ? data instanceof Uint8Array : dtypeOfArray(data) === type;
  if (!fits) {
    throw new Error(
      `encodeTensor: a ${data.constructor.name} cannot hold ${dtypeName(type)} (FLOAT16: encodeFloat16)`,
    );
  }
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) {
      throw new Error(`encodeTensor: bad dimension ${d} in [${shape.join(", ")}]`);
    }
  }
  if (elementCount(shape) !== data.length) {
    throw new Error(
      `encodeTensor: shape [${shape.join(", ")}] needs ${elementCount(shape)} elements, got ${data.length}`,
    );
  }
  return create(TensorSchema, { dtype: type, shape: shape.map((d) => BigInt(d)), data: asBytes(data) });
}

/** A FLOAT16 proto Tensor from float values (round to nearest even). */
export function encodeFloat16(data: Float32Array, shape: readonly number[]): Tensor {
  if (elementCount(shape) !== data.length) {
    throw new Error(
      `encodeFloat16: shape [${shape.join(", ")}] needs ${elementCount(shape)} elements, got ${data.length}`,
    );
  }
  const bits = new Uint16Array(data.length);
  for (let i = 0; i < data.length; i++) bits[i] = floatToHalf(data[i]);
  return create(TensorSchema, {
    dtype: DataType.FLOAT16,
    shape: shape.map((d) => BigInt(d)),
    data: asBytes(bits),
  });
}
