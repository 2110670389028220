import { assertEquals, assertRejects, assertThrows } from "../../../lib/testing/assert.ts";
import { FailedPreconditionError, InvalidArgumentError } from "../../../lib/errors.ts";
import { buildLinearImageScorerOnnx } from "../testing/onnx_builder.ts";
import { floatTensor, integerTensor, openSession, type TensorMetadata } from "./onnx_session.ts";

function meta(type: TensorMetadata["type"], shape: (number | string)[]): TensorMetadata {
  return { name: "x", isTensor: true, type, shape };
}

Deno.test("integerTensor feeds the declared element type and fits the declared rank", () => {
  const a = integerTensor(meta("int64", ["batch", 3]), [1, 2, 3], [1, 3]);
  assertEquals(a.type, "int64");
  assertEquals((a.data as BigInt64Array)[2], 3n);
  const b = integerTensor(meta("int32", ["batch", 3]), [1, 2, 3], [1, 3]);
  assertEquals(b.type, "int32");
  // rank-0 timestep-style scalar
  assertEquals([...integerTensor(meta("int64", []), [7], [1]).dims], []);
  // [B] declared, [B, 1] held
  assertEquals([...integerTensor(meta("int64", ["batch"]), [1, 2], [2, 1]).dims], [2]);
  // [B, 1] declared, [B] held
  assertEquals([...floatTensor(meta("float32", ["batch", 1]), Float32Array.of(1, 2), [2]).dims], [2, 1]);
  assertThrows(
    () => integerTensor(meta("int64", ["batch", 77]), [1, 2], [1, 2]),
    InvalidArgumentError,
    "inputs.x",
  );
  assertThrows(
    () => floatTensor(meta("float16", ["b", 3]), new Float32Array(3), [1, 3]),
    InvalidArgumentError,
    "float16",
  );
});

Deno.test({
  name: "openSession: CUDA EP loads, or fails with a FailedPreconditionError saying its binaries are missing",
  fn: async () => {
    const dir = await Deno.makeTempDir();
    try {
      await Deno.writeFile(`${dir}/m.onnx`, buildLinearImageScorerOnnx({ weights: [1, 1, 1], size: 8 }));
      try {
        const cuda = await openSession(`${dir}/m.onnx`, { executionProvider: "cuda" });
        console.log("CUDA execution provider available on this machine");
        await cuda.release();
      } catch (e) {
        assertEquals((e as Error).constructor, FailedPreconditionError, (e as Error).message);
        assertEquals((e as Error).message.includes("CUDA execution provider binaries"), true);
      }
      await assertRejects(() => openSession(`${dir}/missing.onnx`), InvalidArgumentError, "not found");
      const s = await openSession(`${dir}/m.onnx`);
      assertEquals(s.inputNames, ["pixel_values"]);
      await s.release();
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("openSession with allowSpinning false runs the same model to the same outputs", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeFile(
      `${dir}/m.onnx`,
      buildLinearImageScorerOnnx({ weights: [0.5, -1, 2], bias: 1, size: 4 }),
    );
    const ort = await import("onnxruntime-node");
    const pixels = Float32Array.from({ length: 2 * 3 * 4 * 4 }, (_, i) => (i % 7) / 7);
    const outputs: number[][] = [];
    for (const allowSpinning of [true, false]) {
      const s = await openSession(`${dir}/m.onnx`, { allowSpinning, intraOpNumThreads: 2 });
      try {
        const r = await s.run({ pixel_values: new ort.Tensor("float32", pixels, [2, 3, 4, 4]) });
        outputs.push([...(r[s.outputNames[0]].data as Float32Array)]);
      } finally {
        await s.release();
      }
    }
    assertEquals(outputs[0].length, 2);
    assertEquals(outputs[1], outputs[0]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
