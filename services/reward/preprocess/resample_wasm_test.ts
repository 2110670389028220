import { assertEquals } from "../../../lib/testing/assert.ts";
import { renderWasmModule, WASM_TARGETS } from "../../../tools/gen_wasm.ts";

Deno.test("every generated wasm module is what its .wat assembles to (deno task gen:wasm)", async () => {
  for (const [wat, ts] of WASM_TARGETS) {
    const have = await Deno.readTextFile(new URL(`../../../${ts}`, import.meta.url));
    assertEquals(have, await renderWasmModule(wat), `${ts} is stale: run deno task gen:wasm`);
  }
});
