import { assertEquals } from "./testing/assert.ts";
import { median } from "./stats.ts";

Deno.test("median: odd, even, unsorted, empty", () => {
  assertEquals(median([3, 1, 2]), 2);
  assertEquals(median([4, 1, 3, 2]), 2.5);
  assertEquals(median([5]), 5);
  assertEquals(median([]), NaN);
});
