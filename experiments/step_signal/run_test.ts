import { assertAlmostEquals, assertEquals } from "../../lib/testing/assert.ts";
import { spearman } from "./run.ts";

Deno.test("spearman: monotone is 1, reversed is -1, ties take average ranks", () => {
  assertAlmostEquals(spearman([1, 2, 3, 4], [10, 20, 25, 100]), 1, 1e-12);
  assertAlmostEquals(spearman([1, 2, 3, 4], [4, 3, 2, 1]), -1, 1e-12);
  // Ranks a = [0, 1.5, 1.5, 3], b = [0, 1, 2, 3]: Pearson of the ranks.
  assertAlmostEquals(spearman([1, 2, 2, 3], [1, 2, 3, 4]), 0.9486832980505138, 1e-12);
  assertEquals(Number.isNaN(spearman([1, 1, 1], [1, 2, 3])), true);
});
