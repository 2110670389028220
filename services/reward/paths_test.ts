import { assertEquals, assertRejects } from "../../lib/testing/assert.ts";
import { InvalidArgumentError, NotFoundError, PermissionDeniedError } from "../../lib/errors.ts";
import { join } from "node:path";
import { isInside, realPathInside, resolveBundlePath } from "./paths.ts";

/** A temp tree: <tmp>/root/models/a (bundle), <tmp>/outside (secret), symlinks inside root. */
async function tree() {
  const tmp = await Deno.realPath(await Deno.makeTempDir({ prefix: "reward-paths-" }));
  const root = join(tmp, "root");
  await Deno.mkdir(join(root, "models", "a"), { recursive: true });
  await Deno.mkdir(join(tmp, "outside"), { recursive: true });
  await Deno.writeTextFile(join(tmp, "outside", "secret.onnx"), "x");
  await Deno.writeTextFile(join(root, "models", "file.txt"), "x");
  await Deno.symlink(join(tmp, "outside"), join(root, "escape"));
  await Deno.symlink(join(root, "models", "a"), join(root, "inner-link"));
  await Deno.symlink(join(tmp, "outside", "secret.onnx"), join(root, "models", "a", "model.onnx"));
  return { tmp, root, cleanup: () => Deno.remove(tmp, { recursive: true }) };
}

Deno.test("paths: relative and absolute paths inside the root resolve to real folders", async () => {
  const t = await tree();
  try {
    assertEquals(await resolveBundlePath(t.root, "models/a"), join(t.root, "models", "a"));
    assertEquals(await resolveBundlePath(t.root, "./models//a/"), join(t.root, "models", "a"));
    assertEquals(await resolveBundlePath(t.root, join(t.root, "models", "a")), join(t.root, "models", "a"));
    // A symlink that stays inside the root is fine.
    assertEquals(await resolveBundlePath(t.root, "inner-link"), join(t.root, "models", "a"));
  } finally {
    await t.cleanup();
  }
});

Deno.test("paths: traversal, absolute paths outside and symlinks out are rejected", async () => {
  const t = await tree();
  try {
    await assertRejects(
      () => resolveBundlePath(t.root, "../outside"),
      InvalidArgumentError,
      'bundle: "../outside"',
    );
    await assertRejects(
      () => resolveBundlePath(t.root, "models/../../outside"),
      InvalidArgumentError,
      '".."',
    );
    await assertRejects(
      () => resolveBundlePath(t.root, join(t.tmp, "outside")),
      PermissionDeniedError,
      "is outside the root folder",
    );
    await assertRejects(
      () => resolveBundlePath(t.root, "/etc"),
      PermissionDeniedError,
      "outside the root folder",
    );
    await assertRejects(
      () => resolveBundlePath(t.root, "escape"),
      PermissionDeniedError,
      "through a symlink",
    );
    await assertRejects(() => resolveBundlePath(t.root, "nope"), NotFoundError, '"nope" does not exist');
    await assertRejects(
      () => resolveBundlePath(t.root, "models/file.txt"),
      InvalidArgumentError,
      "not a folder",
    );
    await assertRejects(() => resolveBundlePath(t.root, ""), InvalidArgumentError, "bundle: is empty");
    await assertRejects(() => resolveBundlePath(t.root, "a\0b"), InvalidArgumentError, "NUL");
    // A file inside a bundle that links out of the root.
    await assertRejects(
      () => realPathInside(t.root, join(t.root, "models", "a", "model.onnx"), "models.model.file"),
      PermissionDeniedError,
      "models.model.file",
    );
  } finally {
    await t.cleanup();
  }
});

Deno.test("paths: isInside does not confuse sibling prefixes", () => {
  assertEquals(isInside("/m/root", "/m/root"), true);
  assertEquals(isInside("/m/root", "/m/root/a/b"), true);
  assertEquals(isInside("/m/root", "/m/root2"), false);
  assertEquals(isInside("/m/root", "/m/root/..foo"), true);
  assertEquals(isInside("/m/root", "/m"), false);
});
