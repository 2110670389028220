import * as tf from "@tensorflow/tfjs-core";
import { assertAllClose } from "../testing/assert.ts";
import { initBackend } from "./backend.ts";
import { enableGradients } from "./gradients.ts";

Deno.test("wasm UnsortedSegmentSum: the gather gradient matches the cpu backend", async () => {
  await enableGradients();
  const table = [[1, 2, 3], [4, 5, 6], [7, 8, 9], [1, 0, 1]];
  const ids = [[0, 2, 2], [3, 0, 1]];
  const grad = () =>
    tf.tidy(() => {
      const w = tf.tensor2d(table);
      const g = tf.grad((t: tf.Tensor) =>
        tf.sum(
          tf.mul(tf.gather(t, tf.tensor2d(ids, [2, 3], "int32")), tf.reshape(tf.range(1, 19), [2, 3, 3])),
        )
      );
      return Array.from(g(w).dataSync());
    });
  await initBackend("cpu");
  const expected = grad();
  await initBackend("wasm");
  assertAllClose(grad(), expected, { atol: 1e-6, label: "d table" });
});
