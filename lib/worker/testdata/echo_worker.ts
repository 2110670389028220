// Worker of lib/worker/remote_test.ts: an object with a few methods over typed arrays and errors.
import { InvalidArgumentError } from "../../errors.ts";
import { serveObject } from "../remote.ts";

serveObject((init) => {
  const { scale } = init as { scale: number };
  // Returned as is by `kept`, as a cache would be: a transferred reply would detach it here.
  const kept = new Float32Array([5, 6, 7]);
  return Promise.resolve({
    kept: () => kept,
    scaled: (x: { data: Float32Array }) => ({ data: x.data.map((v) => v * scale), owned: x.data.byteLength }),
    fail: (field: string) => {
      throw new InvalidArgumentError(field, "is wrong");
    },
    crash: () => {
      throw new TypeError("a bug");
    },
  });
});
