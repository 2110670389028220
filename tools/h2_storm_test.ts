/**
 * Bounded close storm in the suite (the full 20 storms x 32 clients + 1000 cycles is
 * `deno task storm`): the reward service process must survive every storm and cycle.
 */
import { assertEquals } from "../lib/testing/assert.ts";
import { runStorm } from "./h2_storm.ts";

Deno.test("close storm: 3 storms of 32 clients closing at once and 50 cycles, the server survives", async () => {
  const result = await runStorm({
    storms: 3,
    clients: 32,
    rounds: 2,
    calls: 1,
    images: 1,
    side: 64,
    cycles: 50,
    supervised: false,
    guard: true,
    timeoutMs: 60_000,
    log: () => {},
  });
  assertEquals(result.exits, []);
  assertEquals(result.deaths, 0);
  assertEquals(result.failedCalls, 0);
});
