import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { DataType, type Image, ImageSchema, type Tensor, TensorSchema } from "../../gen/rdpo/v1/tensor_pb.ts";
import { InvalidArgumentError, ResourceExhaustedError } from "../errors.ts";
import { assert, assertEquals, assertThrows } from "../testing/assert.ts";
import {
  decodeFloat32,
  decodeImage,
  decodeImages,
  decodeIntegers,
  decodeTensor,
  decodeTfImage,
  decodeTfTensor,
  encodeFloat16,
  encodeImage,
  encodeTensor,
  encodeTfImage,
  encodeTfTensor,
  expectShape,
  floatToHalf,
} from "./codec.ts";
import { halfToFloat } from "./safetensors.ts";

await tf.setBackend("cpu");

const t = (dtype: DataType, shape: number[], data: Uint8Array): Tensor =>
  create(TensorSchema, { dtype, shape: shape.map(BigInt), data });

const f32bytes = (values: number[]) => new Uint8Array(new Float32Array(values).buffer);

Deno.test("float32 round trip through protobuf bytes; aligned data is a view, unaligned is copied", () => {
  const values = Float32Array.from({ length: 2 * 4 * 3 * 3 }, (_, i) => i * 0.5 - 3);
  const encoded = encodeTensor(values, [2, 4, 3, 3]);
  assert(encoded.data.buffer === values.buffer, "encoding does not copy");
  const bytes = toBinary(TensorSchema, encoded);
  const decodedMsg = fromBinary(TensorSchema, bytes);
  const out = decodeFloat32("latents", decodedMsg, { shape: [null, 4, null, null] });
  assertEquals(out.shape, [2, 4, 3, 3]);
  assertEquals(Array.from(out.data), Array.from(values));
  // The view/copy decision follows the byte offset.
  const aligned = new Uint8Array(new ArrayBuffer(4 + values.byteLength), 4);
  aligned.set(f32bytes([...values]));
  assert(
    decodeFloat32("x", t(DataType.FLOAT32, [72], aligned)).data.buffer === aligned.buffer,
    "aligned -> view",
  );
  const unaligned = new Uint8Array(new ArrayBuffer(1 + values.byteLength), 1);
  unaligned.set(f32bytes([...values]));
  const copied = decodeFloat32("x", t(DataType.FLOAT32, [72], unaligned)).data;
  assert(copied.buffer !== unaligned.buffer, "unaligned -> copy");
  assertEquals(Array.from(copied), Array.from(values));
});

Deno.test("every dtype decodes to its typed array", () => {
  const i32 = new Int32Array([-1, 2, 3]);
  assertEquals(Array.from(decodeTensor("x", encodeTensor(i32, [3])).data as Int32Array), [-1, 2, 3]);
  const i64 = new BigInt64Array([-5n, 2n ** 40n]);
  assertEquals(Array.from(decodeTensor("x", encodeTensor(i64, [2])).data as BigInt64Array), [-5n, 2n ** 40n]);
  assertEquals(Array.from(decodeIntegers("x", encodeTensor(i64, [2])).data), [-5, 2 ** 40]);
  const f64 = new Float64Array([0.1, -2]);
  assertEquals(Array.from(decodeFloat32("x", encodeTensor(f64, [2])).data), [Math.fround(0.1), -2]);
  const u8 = new Uint8Array([0, 255]);
  assertEquals(Array.from(decodeIntegers("x", encodeTensor(u8, [2, 1])).data), [0, 255]);
  const bools = encodeTensor(new Uint8Array([1, 0, 1]), [3], DataType.BOOL);
  assertEquals(bools.dtype, DataType.BOOL);
  assertEquals(Array.from(decodeTensor("x", bools).data as Uint8Array), [1, 0, 1]);
  const halves = encodeFloat16(new Float32Array([1, -0.5, 65504, 1e-7]), [4]);
  assertEquals(Array.from(decodeFloat32("x", halves).data), [1, -0.5, 65504, halfToFloat(floatToHalf(1e-7))]);
  assertEquals(decodeTensor("x", encodeTensor(new Float32Array(0), [0, 4])).shape, [0, 4]);
});

Deno.test("floatToHalf matches halfToFloat on every finite half value (round trip)", () => {
  for (let h = 0; h < 0x10000; h++) {
    const exp = (h >> 10) & 0x1f;
    if (exp === 0x1f) continue; // Inf/NaN
    assertEquals(floatToHalf(halfToFloat(h)), h, `h=${h}`);
  }
  assertEquals(floatToHalf(1e6), 0x7c00, "overflow -> +Infinity");
  assertEquals(floatToHalf(1 + 2 ** -11), floatToHalf(1), "ties round to even");
});

/** [name, field-or-class, tensor, options, expected message fragment] */
const BAD_TENSORS: [
  string,
  typeof InvalidArgumentError | typeof ResourceExhaustedError,
  Tensor | undefined,
  Parameters<typeof decodeTensor>[2],
  string,
][] = [
  ["missing", InvalidArgumentError, undefined, {}, "latents: missing"],
  [
    "unspecified dtype",
    InvalidArgumentError,
    t(DataType.UNSPECIFIED, [1], new Uint8Array(4)),
    {},
    "latents.dtype: not set",
  ],
  [
    "unknown dtype",
    InvalidArgumentError,
    t(99 as DataType, [1], new Uint8Array(4)),
    {},
    "latents.dtype: unknown dtype 99",
  ],
  [
    "too few bytes",
    InvalidArgumentError,
    t(DataType.FLOAT32, [2, 2], new Uint8Array(15)),
    {},
    "latents.data: 15 bytes, expected 16",
  ],
  [
    "too many bytes",
    InvalidArgumentError,
    t(DataType.INT64, [1], new Uint8Array(9)),
    {},
    "latents.data: 9 bytes, expected 8",
  ],
  [
    "negative dim",
    InvalidArgumentError,
    create(TensorSchema, { dtype: DataType.FLOAT32, shape: [2n, -1n], data: new Uint8Array(0) }),
    {},
    "latents.shape[1]: negative dimension -1",
  ],
  [
    "absurd dim",
    ResourceExhaustedError,
    create(TensorSchema, { dtype: DataType.FLOAT32, shape: [2n ** 40n], data: new Uint8Array(0) }),
    {},
    "latents.shape[0]: dimension 1099511627776 exceeds the limit",
  ],
  [
    "element count over the limit",
    ResourceExhaustedError,
    t(DataType.UINT8, [100, 100], new Uint8Array(10000)),
    { maxElements: 9999 },
    "latents.shape: [100, 100] has 10000 elements, over the limit of 9999",
  ],
  [
    "NaN",
    InvalidArgumentError,
    t(DataType.FLOAT32, [2], f32bytes([1, NaN])),
    {},
    "latents.data: element 1 is NaN",
  ],
  [
    "Infinity",
    InvalidArgumentError,
    t(DataType.FLOAT32, [1], f32bytes([-Infinity])),
    {},
    "element 0 is -Infinity",
  ],
  [
    "half Infinity",
    InvalidArgumentError,
    t(DataType.FLOAT16, [1], new Uint8Array([0x00, 0x7c])),
    {},
    "latents.data: element 0 is Infinity",
  ],
  ["wrong dtype", InvalidArgumentError, t(DataType.INT32, [1], new Uint8Array(4)), {
    dtypes: [DataType.FLOAT32],
  }, "latents.dtype: expected FLOAT32, got INT32"],
  [
    "wrong shape",
    InvalidArgumentError,
    t(DataType.FLOAT32, [2, 3], new Uint8Array(24)),
    { shape: [null, 4] },
    "latents.shape: expected [?, 4], got [2, 3]",
  ],
  [
    "wrong rank",
    InvalidArgumentError,
    t(DataType.FLOAT32, [2], new Uint8Array(8)),
    { shape: [2, 1] },
    "expected [2, 1], got [2]",
  ],
  [
    "bool not 0/1",
    InvalidArgumentError,
    t(DataType.BOOL, [2], new Uint8Array([1, 2])),
    {},
    "element 1 is 2, not a bool",
  ],
];

Deno.test("bad tensors are rejected with the field and the problem (table)", () => {
  for (const [name, cls, tensor, options, message] of BAD_TENSORS) {
    const err = assertThrows(() => decodeTensor("latents", tensor, options), cls, message);
    assert(err.message.startsWith("latents"), `${name}: ${err.message}`);
  }
});

Deno.test("allowNonFinite lets NaN through; typed decoders reject other dtypes", () => {
  assert(
    Number.isNaN(
      decodeFloat32("x", t(DataType.FLOAT32, [1], f32bytes([NaN])), { allowNonFinite: true }).data[0],
    ),
  );
  assertThrows(
    () => decodeFloat32("x", t(DataType.INT32, [1], new Uint8Array(4))),
    InvalidArgumentError,
    "x.dtype: expected",
  );
  assertThrows(
    () => decodeIntegers("ids", t(DataType.FLOAT32, [1], f32bytes([1]))),
    InvalidArgumentError,
    "ids.dtype",
  );
  const huge = encodeTensor(new BigInt64Array([2n ** 60n]), [1]);
  assertThrows(() => decodeIntegers("ids", huge), InvalidArgumentError, "ids.data: element 0");
  assertThrows(() => decodeTfTensor("ids", huge), InvalidArgumentError, "does not fit int32");
});

Deno.test("expectShape", () => {
  expectShape("latents", [2, 4, 64, 64], [null, 4, null, null]);
  assertThrows(
    () => expectShape("latents", [2, 3, 64, 64], [null, 4, null, null]),
    InvalidArgumentError,
    "latents.shape: expected [?, 4, ?, ?], got [2, 3, 64, 64]",
  );
});

Deno.test("tfjs round trip: float32, int32, int64 -> int32, bool", async () => {
  const x = tf.tensor([[1.5, -2], [3, 4]]);
  const proto = await encodeTfTensor(x);
  assertEquals([proto.dtype, proto.shape], [DataType.FLOAT32, [2n, 2n]]);
  const back = decodeTfTensor("x", proto);
  assertEquals([back.dtype, back.shape, Array.from(await back.data())], ["float32", [2, 2], [1.5, -2, 3, 4]]);
  const ids = decodeTfTensor("ids", encodeTensor(new BigInt64Array([7n, -1n]), [1, 2]));
  assertEquals([ids.dtype, Array.from(await ids.data())], ["int32", [7, -1]]);
  const mask = await encodeTfTensor(tf.tensor([true, false], [2], "bool"));
  assertEquals(mask.dtype, DataType.BOOL);
  assertEquals(Array.from(await decodeTfTensor("m", mask).data()), [1, 0]);
  tf.dispose([x, back, ids]);
});

Deno.test("encodeTensor refuses mismatched shapes and arrays", () => {
  assertThrows(() => encodeTensor(new Float32Array(3), [2, 2]), Error, "needs 4 elements, got 3");
  assertThrows(() => encodeTensor(new Float32Array(3), [3], DataType.INT32), Error, "cannot hold INT32");
  assertThrows(() => encodeTensor(new Float32Array(0), [-1]), Error, "bad dimension -1");
});

const img = (width: number, height: number, channels: number, bytes: number): Image =>
  create(ImageSchema, { width, height, channels, data: new Uint8Array(bytes) });

Deno.test("images: valid ones decode without copying; bad ones name the field (table)", () => {
  const good = img(4, 2, 3, 24);
  assert(decodeImage("images[0]", good).data === good.data, "no copy");
  assertEquals(decodeImage("im", img(2, 2, 1, 4), { channels: [1, 3] }).channels, 1);
  const table: [
    Image | undefined,
    typeof InvalidArgumentError | typeof ResourceExhaustedError,
    string,
    { channels?: number[]; maxSide?: number },
  ][] = [
    [undefined, InvalidArgumentError, "image: missing", {}],
    [img(0, 2, 3, 0), InvalidArgumentError, "image.width: must be > 0, got 0", {}],
    [img(2, 0, 3, 0), InvalidArgumentError, "image.height: must be > 0, got 0", {}],
    [img(2, 2, 4, 16), InvalidArgumentError, "image.channels: expected 3, got 4", {}],
    [img(2, 2, 0, 0), InvalidArgumentError, "image.channels: expected 3, got 0", {}],
    [img(2, 2, 3, 11), InvalidArgumentError, "image.data: 11 bytes, expected 12 (2 x 2 x 3)", {}],
    [img(2, 2, 3, 13), InvalidArgumentError, "image.data: 13 bytes, expected 12", {}],
    [img(600, 2, 3, 3600), ResourceExhaustedError, "image.width: 600 exceeds the maximum side 512", {
      maxSide: 512,
    }],
  ];
  for (const [image, cls, message, options] of table) {
    assertThrows(() => decodeImage("image", image, options), cls, message);
  }
  assertThrows(() => decodeImages("images", [good, img(1, 1, 3, 2)]), InvalidArgumentError, "images[1].data");
});

Deno.test("images <-> tfjs [H, W, C]", async () => {
  const data = Uint8Array.from({ length: 2 * 3 * 3 }, (_, i) => i * 10);
  const proto = encodeImage(3, 2, 3, data);
  const x = decodeTfImage("im", proto);
  assertEquals([x.shape, x.dtype], [[2, 3, 3], "int32"]);
  const back = await encodeTfImage(x);
  assertEquals([back.width, back.height, back.channels, Array.from(back.data)], [3, 2, 3, Array.from(data)]);
  const clamped = await encodeTfImage(tf.tensor3d([-3, 254.6, 300], [1, 1, 3]));
  assertEquals(Array.from(clamped.data), [0, 255, 255]);
  assertThrows(() => encodeImage(2, 2, 3, new Uint8Array(5)), Error, "5 bytes for 2 x 2 x 3");
  tf.dispose([x]);
});
