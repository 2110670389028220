import { assertEquals, assertThrows } from "../../testing/assert.ts";
import { FlagError } from "../flags.ts";
import { parseMethods } from "./front.ts";

Deno.test("front: --methods is a JSON list of relay methods; anything else is a FlagError naming it", () => {
  const methods = [{ path: "/rdpo.v1.RewardService/Score", requestStream: false, responseStream: false }];
  assertEquals(parseMethods(JSON.stringify(methods)), methods);
  assertEquals(parseMethods("[]"), []);
  for (
    const bad of ["x", "{}", '[{"path":"/a/b"}]', '[{"path":1,"requestStream":false,"responseStream":false}]']
  ) {
    const e = assertThrows(() => parseMethods(bad), FlagError);
    assertEquals(e.message.startsWith("--methods: "), true, bad);
  }
});
