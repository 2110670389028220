import { assert, assertEquals, assertRejects } from "../testing/assert.ts";
import { RemoteObject, RemoteServiceError, transferables } from "./remote.ts";
import { statusFromError } from "../rpc/status.ts";
import { Code } from "../rpc/status.ts";

Deno.test("transferables: only typed arrays that own their whole buffer", () => {
  const whole = new Float32Array(4);
  const pool = new ArrayBuffer(64);
  const view = new Float32Array(pool, 16, 4);
  const found = transferables([{ a: whole, b: view }, new Map([["k", new Uint8Array(3)]])]);
  assertEquals(found.length, 2);
  assert(found.includes(whole.buffer) && !found.includes(pool));
});

Deno.test({
  name: "RemoteObject: calls cross the worker, buffers are transferred, errors keep their status",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const remote = await RemoteObject.start(new URL("./testdata/echo_worker.ts", import.meta.url), {
      scale: 2,
    });
    try {
      const x = new Float32Array([1, 2, 3]);
      const r = await remote.call<{ data: Float32Array; owned: number }>("scaled", { data: x });
      assertEquals([...r.data], [2, 4, 6]);
      assertEquals(r.owned, 12);
      assertEquals(x.byteLength, 0, "the argument's buffer moved to the worker");
      const view = new Float32Array(new ArrayBuffer(32), 8, 2).fill(1);
      await remote.call("scaled", { data: view });
      assertEquals(view.byteLength, 8, "a view into a larger buffer is copied, not detached");
      // A reply the worker keeps (a cache) must stay readable there: replies are copied.
      assertEquals([...await remote.call<Float32Array>("kept")], [5, 6, 7]);
      assertEquals([...await remote.call<Float32Array>("kept")], [5, 6, 7]);

      const e = await assertRejects(() => remote.call("fail", "latents.shape"), RemoteServiceError);
      assertEquals((e as RemoteServiceError).field, "latents.shape");
      assertEquals(statusFromError(e).code, Code.INVALID_ARGUMENT);
      assertEquals(e.message, "latents.shape: is wrong");
      const bug = await assertRejects(() => remote.call("crash"), Error, "a bug");
      assertEquals(statusFromError(bug).code, Code.INTERNAL);
      await assertRejects(() => remote.call("nothing"), Error, "no method");
    } finally {
      remote.terminate();
    }
  },
});
