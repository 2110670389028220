import { assertEquals } from "../testing/assert.ts";
import { pathExists } from "./exists.ts";

Deno.test("pathExists: files, folders, missing paths and dangling symlinks", async () => {
  const dir = await Deno.makeTempDir({ prefix: "rdpo-exists-" });
  try {
    await Deno.writeTextFile(`${dir}/f`, "x");
    await Deno.symlink(`${dir}/missing`, `${dir}/dangling`);
    assertEquals(await pathExists(`${dir}/f`), true);
    assertEquals(await pathExists(dir), true);
    assertEquals(await pathExists(`${dir}/missing`), false);
    assertEquals(await pathExists(`${dir}/dangling`), false);
    assertEquals(await pathExists(`${dir}/dangling`, { noFollow: true }), true);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
