/**
 * The committed gen/ must be what `deno task gen` produces from proto/: regenerate into a temporary
 * folder and compare file by file.
 */
import { join } from "node:path";
import { assertEquals } from "../lib/testing/assert.ts";
import { diffTrees, generate, repoRoot } from "../tools/gen.ts";

Deno.test("gen/ is up to date with proto/ (deno task gen)", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "rdpo-gen-" });
  try {
    const fresh = await generate({ outDir: join(tmp, "gen") });
    const problems = await diffTrees(fresh, join(repoRoot, "gen"));
    if (problems.length > 0) {
      throw new Error(`gen/ is stale; run \`deno task gen\`:\n  ${problems.join("\n  ")}`);
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("diffTrees reports changed, missing and extra files", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "rdpo-diff-" });
  try {
    for (const side of ["a", "b"]) await Deno.mkdir(join(tmp, side, "x"), { recursive: true });
    await Deno.writeTextFile(join(tmp, "a", "x", "same.ts"), "1");
    await Deno.writeTextFile(join(tmp, "b", "x", "same.ts"), "1");
    await Deno.writeTextFile(join(tmp, "a", "x", "changed.ts"), "1");
    await Deno.writeTextFile(join(tmp, "b", "x", "changed.ts"), "2");
    await Deno.writeTextFile(join(tmp, "a", "only_generated.ts"), "");
    await Deno.writeTextFile(join(tmp, "b", "only_committed.ts"), "");
    assertEquals(await diffTrees(join(tmp, "a"), join(tmp, "b")), [
      "missing (generated, not committed): only_generated.ts",
      "differs: x/changed.ts",
      "stale (committed, not generated): only_committed.ts",
    ]);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
