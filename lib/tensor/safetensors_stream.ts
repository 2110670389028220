/**
 * Writes a safetensors file whose tensors are produced one at a time, so a multi-GB checkpoint
 * (SD1.5's UNet is 3.4 GB in float32) is never held in memory whole: the header is built from the
 * shapes, then each tensor's bytes are asked for in file order and written. The file appears
 * atomically (temporary file in the same folder, fsync, rename), like `writeSafetensors`.
 */
import type { SafetensorsDtype } from "./safetensors.ts";

const DTYPE_BYTES: Partial<Record<SafetensorsDtype, number>> = { F32: 4, F16: 2, BF16: 2 };

export interface StreamedTensorSpec {
  name: string;
  dtype: "F32" | "F16" | "BF16";
  shape: readonly number[];
}

/** Header bytes (8-byte length prefix included, data 8-byte aligned) and the tensors in file order. */
export function encodeStreamHeader(
  specs: readonly StreamedTensorSpec[],
  metadata?: Record<string, string>,
): { header: Uint8Array; order: StreamedTensorSpec[]; dataBytes: number } {
  const order = [...specs].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const obj: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length) obj.__metadata__ = metadata;
  let offset = 0;
  for (const s of order) {
    if (obj[s.name]) throw new Error(`tensor "${s.name}" given twice`);
    const n = s.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[s.dtype]!;
    obj[s.name] = { dtype: s.dtype, shape: s.shape, data_offsets: [offset, offset + n] };
    offset += n;
  }
  let json = JSON.stringify(obj);
  while ((8 + json.length) % 8 !== 0) json += " ";
  const body = new TextEncoder().encode(json);
  const header = new Uint8Array(8 + body.length);
  new DataView(header.buffer).setBigUint64(0, BigInt(body.length), true);
  header.set(body, 8);
  return { header, order, dataBytes: offset };
}

/**
 * Writes `specs` to `path`; `produce(spec)` returns the tensor's little-endian bytes (exactly
 * elements x dtype size) and is called once per tensor, in sorted name order. Returns the file size.
 */
export async function writeSafetensorsStream(
  path: string,
  specs: readonly StreamedTensorSpec[],
  produce: (spec: StreamedTensorSpec) => Uint8Array | Promise<Uint8Array>,
  metadata?: Record<string, string>,
): Promise<number> {
  const { header, order } = encodeStreamHeader(specs, metadata);
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
    for (const spec of order) {
      const data = await produce(spec);
      const want = spec.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[spec.dtype]!;
      if (data.byteLength !== want) {
        throw new Error(`tensor "${spec.name}": produced ${data.byteLength} bytes, header says ${want}`);
      }
      await writeAll(data);
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
