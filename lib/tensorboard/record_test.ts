import { assertEquals, assertThrows } from "../testing/assert.ts";
import { decodeRecords, encodeRecord, maskedCrc32c, RecordError } from "./record.ts";

/** Bit-by-bit CRC-32C (reflected polynomial 0x82F63B78): an independent check of the library. */
function slowCrc32c(data: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of data) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

const bytes = (s: string) => new TextEncoder().encode(s);

Deno.test("record: masked CRC-32C matches the definition (check value of 123456789)", () => {
  assertEquals(slowCrc32c(bytes("123456789")), 0xe3069283); // the CRC-32C check value
  for (const s of ["", "a", "123456789", "brain.Event:2", "x".repeat(1000)]) {
    const crc = slowCrc32c(bytes(s));
    const masked = ((((crc >>> 15) | (crc << 17)) >>> 0) + 0xa282ead8) >>> 0;
    assertEquals(maskedCrc32c(bytes(s)), masked, s);
  }
});

Deno.test("record: framing round-trips and has the TFRecord layout", () => {
  const data = [bytes("first"), new Uint8Array(0), bytes("third record, longer")];
  const file = new Uint8Array(data.reduce((n, d) => n + d.length + 16, 0));
  let at = 0;
  for (const d of data) {
    const r = encodeRecord(d);
    assertEquals(r.length, d.length + 16);
    const view = new DataView(r.buffer);
    assertEquals(view.getBigUint64(0, true), BigInt(d.length));
    assertEquals(view.getUint32(8, true), maskedCrc32c(r.subarray(0, 8)));
    assertEquals(view.getUint32(12 + d.length, true), maskedCrc32c(d));
    file.set(r, at);
    at += r.length;
  }
  assertEquals(decodeRecords(file).map((d) => new TextDecoder().decode(d)), [
    "first",
    "",
    "third record, longer",
  ]);
});

Deno.test("record: a torn or corrupted record is an error naming its offset", () => {
  const good = encodeRecord(bytes("hello"));
  const two = new Uint8Array([...good, ...good]);
  assertThrows(
    () => decodeRecords(two.subarray(0, two.length - 3)),
    RecordError,
    "record at byte 21: truncated",
  );
  const flipped = two.slice();
  flipped[21 + 13] ^= 1;
  assertThrows(() => decodeRecords(flipped), RecordError, "record at byte 21: data checksum mismatch");
  const badLength = good.slice();
  badLength[0] = 200;
  assertThrows(() => decodeRecords(badLength), RecordError, "record at byte 0: length checksum mismatch");
});
