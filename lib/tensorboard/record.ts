/**
 * TFRecord framing, the container of TensorBoard's events.out.tfevents.* files:
 *
 *   uint64 length (little-endian) | uint32 masked_crc32c(length bytes) | data | uint32 masked_crc32c(data)
 *
 * masked(crc) = ((crc >>> 15) | (crc << 17)) + 0xa282ead8 (mod 2^32), CRC-32C (Castagnoli) from
 * @aws-crypto/crc32c. The reader checks both checksums, so a torn or corrupted record is an error
 * naming its offset instead of a silently wrong value.
 */
import { crc32c } from "@aws-crypto/crc32c";

const MASK_DELTA = 0xa282ead8;

/** TensorFlow's masked CRC-32C of `data`. */
export function maskedCrc32c(data: Uint8Array): number {
  const crc = crc32c(data) >>> 0;
  return ((((crc >>> 15) | (crc << 17)) >>> 0) + MASK_DELTA) >>> 0;
}

/** One record: header, data and footer in one buffer (written with one call, so it lands whole). */
export function encodeRecord(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(8 + 4 + data.length + 4);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(data.length), true);
  view.setUint32(8, maskedCrc32c(out.subarray(0, 8)), true);
  out.set(data, 12);
  view.setUint32(12 + data.length, maskedCrc32c(data), true);
  return out;
}

export class RecordError extends Error {
  override name = "RecordError";
}

/** Every record's data in `bytes`, in order; a bad checksum or a truncated record throws RecordError. */
export function decodeRecords(bytes: Uint8Array): Uint8Array[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const records: Uint8Array[] = [];
  let at = 0;
  while (at < bytes.length) {
    if (at + 12 > bytes.length) throw new RecordError(`record at byte ${at}: truncated header`);
    const length = view.getBigUint64(at, true);
    if (view.getUint32(at + 8, true) !== maskedCrc32c(bytes.subarray(at, at + 8))) {
      throw new RecordError(`record at byte ${at}: length checksum mismatch`);
    }
    const end = at + 12 + Number(length);
    if (length > BigInt(bytes.length) || end + 4 > bytes.length) {
      throw new RecordError(`record at byte ${at}: truncated data (length ${length})`);
    }
    const data = bytes.subarray(at + 12, end);
    if (view.getUint32(end, true) !== maskedCrc32c(data)) {
      throw new RecordError(`record at byte ${at}: data checksum mismatch`);
    }
    records.push(data);
    at = end + 4;
  }
  return records;
}
