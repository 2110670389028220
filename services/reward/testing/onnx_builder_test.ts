import { assertAllClose, assertEquals } from "../../../lib/testing/assert.ts";
import * as ort from "onnxruntime-node";
import { buildLinearImageScorerOnnx, linearImageScore, OnnxGraphBuilder } from "./onnx_builder.ts";

Deno.test("OnnxGraphBuilder: Gather/MatMul/Add graph runs in ORT with declared names, types and shapes", async () => {
  const g = new OnnxGraphBuilder("t");
  g.input("input_ids", "int64", ["batch", 3]);
  g.initializer("table", "float32", [4, 2], Float32Array.of(0, 1, 10, 11, 20, 21, 30, 31));
  g.initializer("bias", "float32", [2], Float32Array.of(0.5, -0.5));
  g.node("Gather", ["table", "input_ids"], ["emb"], { axis: { i: 0 } });
  g.node("ReduceSum", ["emb", "axes"], ["summed"], { keepdims: { i: 0 } });
  g.initializer("axes", "int64", [1], BigInt64Array.of(1n));
  g.node("Add", ["summed", "bias"], ["out"]);
  g.output("out", "float32", ["batch", 2]);
  const session = await ort.InferenceSession.create(g.build());
  try {
    const meta = session.inputMetadata[0];
    assertEquals(meta.name, "input_ids");
    assertEquals(meta.isTensor && meta.type, "int64");
    assertEquals(meta.isTensor && [...meta.shape], ["batch", 3]);
    const ids = new ort.Tensor("int64", BigInt64Array.of(0n, 1n, 3n, 2n, 2n, 2n), [2, 3]);
    const out = await session.run({ input_ids: ids });
    assertEquals([...out.out.dims], [2, 2]);
    assertAllClose(out.out.data as Float32Array, [40.5, 42.5, 60.5, 62.5], { atol: 1e-6, label: "out" });
  } finally {
    await session.release();
  }
});

Deno.test("buildLinearImageScorerOnnx computes bias + w . channel means, rank 1 or 2", async () => {
  const size = 8;
  const chw = Float32Array.from({ length: 2 * 3 * size * size }, (_, i) => Math.sin(i));
  for (const outputRank of [1, 2] as const) {
    const opts = { weights: [0.5, -2, 3] as [number, number, number], bias: 0.25, size, outputRank };
    const session = await ort.InferenceSession.create(buildLinearImageScorerOnnx(opts));
    try {
      const out = await session.run({ pixel_values: new ort.Tensor("float32", chw, [2, 3, size, size]) });
      assertEquals(out.score.dims.length, outputRank);
      const per = 3 * size * size;
      const want = [0, 1].map((b) => linearImageScore(chw.subarray(b * per, (b + 1) * per), opts));
      assertAllClose(out.score.data as Float32Array, want, { atol: 1e-5, label: `rank ${outputRank}` });
    } finally {
      await session.release();
    }
  }
});
