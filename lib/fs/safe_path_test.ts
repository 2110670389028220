import { assertEquals, assertRejects } from "../testing/assert.ts";
import { InvalidArgumentError, NotFoundError, PermissionDeniedError } from "../errors.ts";
import { resolveInsideRoot } from "./safe_path.ts";
import { join } from "node:path";

Deno.test("safe path: relative paths resolve inside the root; traversal and symlinks out are refused", async () => {
  const base = await Deno.realPath(await Deno.makeTempDir());
  const root = join(base, "root");
  const outside = join(base, "outside");
  await Deno.mkdir(join(root, "a"), { recursive: true });
  await Deno.mkdir(outside);
  await Deno.writeTextFile(join(root, "a", "f.txt"), "x");
  await Deno.symlink(outside, join(root, "escape"));
  await Deno.symlink(join(root, "a"), join(root, "inner"));
  try {
    assertEquals(
      await resolveInsideRoot(root, "a/f.txt", "path", { mustExist: true }),
      join(root, "a", "f.txt"),
    );
    assertEquals(await resolveInsideRoot(root, "a/new.bin", "path"), join(root, "a", "new.bin"));
    assertEquals(await resolveInsideRoot(root, "inner/f.txt", "path"), join(root, "a", "f.txt"));
    assertEquals(await resolveInsideRoot(root, join(root, "a"), "path"), join(root, "a"));
    await assertRejects(
      () => resolveInsideRoot(root, "../outside", "path"),
      PermissionDeniedError,
      "outside",
    );
    await assertRejects(() => resolveInsideRoot(root, "/etc/passwd", "path"), PermissionDeniedError);
    await assertRejects(
      () => resolveInsideRoot(root, "escape/x", "path"),
      PermissionDeniedError,
      "through a symlink",
    );
    await assertRejects(() => resolveInsideRoot(root, "", "path"), InvalidArgumentError);
    await assertRejects(
      () => resolveInsideRoot(root, "a/missing", "path", { mustExist: true }),
      NotFoundError,
    );
    await assertRejects(
      () => resolveInsideRoot(root, "a/missing", "path", { mustExist: true, missing: "invalid_argument" }),
      InvalidArgumentError,
    );
  } finally {
    await Deno.remove(base, { recursive: true });
  }
});
