/**
 * safetensors reader and writer (https://github.com/huggingface/safetensors format):
 * 8-byte little-endian header length N, N bytes of JSON header, then the raw tensor bytes.
 *
 * The reader keeps the file open and reads one tensor at a time at its offset, so a multi-GB
 * checkpoint is never copied whole into memory. The writer streams tensors to a temporary file in
 * the same folder and renames it into place, so a crash never leaves a half-written file.
 */

/** Element types of the format, by their header names. */
export type SafetensorsDtype =
  | "F64"
  | "F32"
  | "F16"
  | "BF16"
  | "I64"
  | "I32"
  | "I16"
  | "I8"
  | "U8"
  | "BOOL";

const DTYPE_BYTES: Record<SafetensorsDtype, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

/** Upper bound on the JSON header (the reference implementation uses 100 MB). */
const MAX_HEADER_BYTES = 100_000_000;

/** One tensor's header entry. `begin`/`end` are absolute file offsets. */
export interface SafetensorsEntry {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  begin: number;
  end: number;
}

/** Typed array holding a tensor's elements. Half floats are widened to Float32Array. */
export type TensorData =
  | Float64Array
  | Float32Array
  | BigInt64Array
  | Int32Array
  | Int16Array
  | Int8Array
  | Uint8Array;

/** A tensor to write: raw elements in a typed array whose type matches `dtype`. */
export interface TensorRecord {
  dtype: SafetensorsDtype;
  shape: number[];
  data: TensorData;
}

/** Error for a file that is not valid safetensors; the message names the file and the problem. */
export class SafetensorsError extends Error {
  override name = "SafetensorsError";
}

function elementCount(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Converts IEEE half-precision bits to a float. */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** Decodes raw little-endian bytes of `dtype` into a typed array (copying into aligned memory). */
export function decodeElements(
  dtype: SafetensorsDtype,
  bytes: Uint8Array,
  count: number,
): TensorData {
  // Copy into a fresh, aligned buffer: typed-array views need element alignment.
  const buf = bytes.slice().buffer;
  switch (dtype) {
    case "F64":
      return new Float64Array(buf, 0, count);
    case "F32":
      return new Float32Array(buf, 0, count);
    case "I64":
      return new BigInt64Array(buf, 0, count);
    case "I32":
      return new Int32Array(buf, 0, count);
    case "I16":
      return new Int16Array(buf, 0, count);
    case "I8":
      return new Int8Array(buf, 0, count);
    case "U8":
    case "BOOL":
      return new Uint8Array(buf, 0, count);
    case "F16": {
      const src = new Uint16Array(buf, 0, count);
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = halfToFloat(src[i]);
      return out;
    }
    case "BF16": {
      const src = new Uint16Array(buf, 0, count);
      const out = new Float32Array(count);
      const u32 = new Uint32Array(out.buffer);
      for (let i = 0; i < count; i++) u32[i] = src[i] << 16;
      return out;
    }
  }
}

/** Parses and validates a header; `fileSize` bounds every offset. */
export function parseHeader(
  json: string,
  dataStart: number,
  fileSize: number,
  where: string,
): { entries: SafetensorsEntry[]; metadata: Record<string, string> } {
  let header: unknown;
  try {
    header = JSON.parse(json);
  } catch (e) {
    throw new SafetensorsError(`${where}: header is not valid JSON (${(e as Error).message})`);
  }
  if (header === null || typeof header !== "object" || Array.isArray(header)) {
    throw new SafetensorsError(`${where}: header must be a JSON object`);
  }
  const entries: SafetensorsEntry[] = [];
  let metadata: Record<string, string> = {};
  const dataSize = fileSize - dataStart;
  for (const [name, value] of Object.entries(header as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (value === null || typeof value !== "object" || Array.isArray(value)) {
        throw new SafetensorsError(`${where}: __metadata__ must be an object of strings`);
      }
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        if (typeof v !== "string") {
          throw new SafetensorsError(`${where}: __metadata__.${k} must be a string`);
        }
      }
      metadata = value as Record<string, string>;
      continue;
    }
    const e = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof e?.dtype !== "string" || !(e.dtype in DTYPE_BYTES)) {
      throw new SafetensorsError(`${where}: tensor "${name}" has unknown dtype ${JSON.stringify(e?.dtype)}`);
    }
    if (
      !Array.isArray(e.shape) ||
      !e.shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)
    ) {
      throw new SafetensorsError(
        `${where}: tensor "${name}" has an invalid shape ${JSON.stringify(e.shape)}`,
      );
    }
    const offsets = e.data_offsets;
    if (
      !Array.isArray(offsets) || offsets.length !== 2 ||
      !offsets.every((o) => Number.isSafeInteger(o) && (o as number) >= 0) ||
      (offsets[0] as number) > (offsets[1] as number) || (offsets[1] as number) > dataSize
    ) {
      throw new SafetensorsError(
        `${where}: tensor "${name}" has invalid data_offsets ${
          JSON.stringify(offsets)
        } (data is ${dataSize} bytes)`,
      );
    }
    const dtype = e.dtype as SafetensorsDtype;
    const shape = e.shape as number[];
    const [b, en] = offsets as [number, number];
    const expected = elementCount(shape) * DTYPE_BYTES[dtype];
    if (en - b !== expected) {
      throw new SafetensorsError(
        `${where}: tensor "${name}" spans ${en - b} bytes but ${dtype}${
          JSON.stringify(shape)
        } needs ${expected}`,
      );
    }
    entries.push({ name, dtype, shape, begin: dataStart + b, end: dataStart + en });
  }
  return { entries, metadata };
}

async function readExactly(file: Deno.FsFile, position: number, length: number): Promise<Uint8Array> {
  const out = new Uint8Array(length);
  await file.seek(position, Deno.SeekMode.Start);
  let got = 0;
  while (got < length) {
    const n = await file.read(out.subarray(got));
    if (n === null) throw new SafetensorsError(`unexpected end of file at byte ${position + got}`);
    got += n;
  }
  return out;
}

/** An open safetensors file; tensors are read on demand. Call `close()` when done. */
export class SafetensorsFile {
  readonly #entries: Map<string, SafetensorsEntry>;
  #file: Deno.FsFile | null;

  private constructor(
    readonly path: string,
    file: Deno.FsFile,
    entries: SafetensorsEntry[],
    readonly metadata: Record<string, string>,
  ) {
    this.#file = file;
    this.#entries = new Map(entries.map((e) => [e.name, e]));
  }

  /** Opens and validates `path` (header only; no tensor data is read). */
  static async open(path: string): Promise<SafetensorsFile> {
    const file = await Deno.open(path, { read: true });
    try {
      const size = (await file.stat()).size;
      if (size < 8) {
        throw new SafetensorsError(`${path}: file is ${size} bytes, shorter than the 8-byte header length`);
      }
      const lenBytes = await readExactly(file, 0, 8);
      const headerLen = Number(new DataView(lenBytes.buffer).getBigUint64(0, true));
      if (headerLen > MAX_HEADER_BYTES || 8 + headerLen > size) {
        throw new SafetensorsError(
          `${path}: header length ${headerLen} is larger than the file or the limit`,
        );
      }
      const json = new TextDecoder().decode(await readExactly(file, 8, headerLen));
      const { entries, metadata } = parseHeader(json, 8 + headerLen, size, path);
      return new SafetensorsFile(path, file, entries, metadata);
    } catch (e) {
      file.close();
      throw e;
    }
  }

  /** Tensor names in header order. */
  names(): string[] {
    return [...this.#entries.keys()];
  }

  has(name: string): boolean {
    return this.#entries.has(name);
  }

  entry(name: string): SafetensorsEntry {
    const e = this.#entries.get(name);
    if (!e) throw new SafetensorsError(`${this.path}: no tensor named "${name}"`);
    return e;
  }

  /** The raw little-endian bytes of one tensor. */
  async readBytes(name: string): Promise<Uint8Array> {
    const e = this.entry(name);
    if (!this.#file) throw new SafetensorsError(`${this.path}: file is closed`);
    return await readExactly(this.#file, e.begin, e.end - e.begin);
  }

  /** One tensor's elements and shape (F16/BF16 widened to float32). */
  async read(name: string): Promise<{ dtype: SafetensorsDtype; shape: number[]; data: TensorData }> {
    const e = this.entry(name);
    const data = decodeElements(e.dtype, await this.readBytes(name), elementCount(e.shape));
    return { dtype: e.dtype, shape: e.shape, data };
  }

  /** One floating-point tensor as float32; throws naming the tensor when it is not a float type. */
  async readFloat32(name: string): Promise<{ shape: number[]; data: Float32Array }> {
    const t = await this.read(name);
    if (t.data instanceof Float32Array) return { shape: t.shape, data: t.data };
    if (t.data instanceof Float64Array) return { shape: t.shape, data: Float32Array.from(t.data) };
    throw new SafetensorsError(`${this.path}: tensor "${name}" is ${t.dtype}, expected a float type`);
  }

  close(): void {
    this.#file?.close();
    this.#file = null;
  }
}

/** Reads every tensor of a (small) file into memory. */
export async function readSafetensors(
  path: string,
): Promise<{ tensors: Map<string, TensorRecord>; metadata: Record<string, string> }> {
  const f = await SafetensorsFile.open(path);
  try {
    const tensors = new Map<string, TensorRecord>();
    for (const name of f.names()) tensors.set(name, await f.read(name));
    return { tensors, metadata: f.metadata };
  } finally {
    f.close();
  }
}

function expectedArrayFor(dtype: SafetensorsDtype, data: TensorData): boolean {
  switch (dtype) {
    case "F64":
      return data instanceof Float64Array;
    case "F32":
      return data instanceof Float32Array;
    case "I64":
      return data instanceof BigInt64Array;
    case "I32":
      return data instanceof Int32Array;
    case "I16":
      return data instanceof Int16Array;
    case "I8":
      return data instanceof Int8Array;
    case "U8":
    case "BOOL":
      return data instanceof Uint8Array;
    default:
      return false;
  }
}

/**
 * Serialises tensors into a safetensors header (keys sorted, as the reference writer does) and
 * returns the header bytes (length prefix included) and the byte ranges of each tensor.
 */
export function encodeHeader(
  tensors: ReadonlyMap<string, TensorRecord>,
  metadata?: Record<string, string>,
): { header: Uint8Array; order: string[] } {
  const order = [...tensors.keys()].sort();
  const obj: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length) obj.__metadata__ = metadata;
  let offset = 0;
  for (const name of order) {
    const t = tensors.get(name)!;
    if (!expectedArrayFor(t.dtype, t.data)) {
      throw new SafetensorsError(
        `tensor "${name}": ${t.dtype} cannot be written from ${t.data.constructor.name}`,
      );
    }
    if (elementCount(t.shape) !== t.data.length) {
      throw new SafetensorsError(
        `tensor "${name}": shape ${JSON.stringify(t.shape)} has ${
          elementCount(t.shape)
        } elements, data has ${t.data.length}`,
      );
    }
    const n = t.data.byteLength;
    obj[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + n] };
    offset += n;
  }
  let json = JSON.stringify(obj);
  // Pad with spaces so tensor data starts 8-byte aligned (as the reference writer does).
  while ((8 + json.length) % 8 !== 0) json += " ";
  const body = new TextEncoder().encode(json);
  const header = new Uint8Array(8 + body.length);
  new DataView(header.buffer).setBigUint64(0, BigInt(body.length), true);
  header.set(body, 8);
  return { header, order };
}

/** Writes the tensors to `path` atomically (temporary file in the same folder, fsync, rename). */
export async function writeSafetensors(
  path: string,
  tensors: ReadonlyMap<string, TensorRecord> | Record<string, TensorRecord>,
  metadata?: Record<string, string>,
): Promise<number> {
  const map = tensors instanceof Map ? tensors : new Map(Object.entries(tensors));
  const { header, order } = encodeHeader(map, metadata);
  const tmp = `${path}.tmp-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
  const file = await Deno.open(tmp, { write: true, create: true, truncate: true });
  let bytes = 0;
  try {
    const writeAll = async (chunk: Uint8Array) => {
      let off = 0;
      while (off < chunk.length) off += await file.write(chunk.subarray(off));
      bytes += chunk.length;
    };
    await writeAll(header);
    for (const name of order) {
      const d = map.get(name)!.data;
      await writeAll(new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
    }
    await file.sync();
  } catch (e) {
    file.close();
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
  file.close();
  await Deno.rename(tmp, path);
  return bytes;
}
