import type { TensorRecord } from "../../lib/tensor/safetensors.ts";

/** Hex sha256 of the tensors in name order (names and raw bytes). */
export async function checksumTensors(tensors: ReadonlyMap<string, TensorRecord>): Promise<string> {
  const enc = new TextEncoder();
  const parts: Uint8Array[] = [];
  for (const name of [...tensors.keys()].sort()) {
    const d = tensors.get(name)!.data;
    parts.push(enc.encode(name), new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
  }
  const total = parts.reduce((a, p) => a + p.length, 0);
  const all = new Uint8Array(total);
  let off = 0;
  for (const p of parts) {
    all.set(p, off);
    off += p.length;
  }
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", all));
  return [...digest].map((b) => b.toString(16).padStart(2, "0")).join("");
}
