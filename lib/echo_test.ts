import { assert, assertEquals } from "./testing/assert.ts";
import { ECHO_MAX, quoteClient, truncateEchoes } from "./echo.ts";
import { checkPathLength } from "./fs/path_limits.ts";
import { resolveInsideRoot } from "./fs/safe_path.ts";
import { InvalidArgumentError } from "./errors.ts";

Deno.test("truncateEchoes cuts every long run and keeps the field name", () => {
  const long = "a".repeat(5000);
  const out = truncateEchoes(`path: "${long}" is outside the root folder /srv/adapters`);
  assert(out.startsWith("path: "));
  assert(out.length < ECHO_MAX + 100, `${out.length} chars`);
  assert(out.includes("(5002 chars)"), out);
  assertEquals(truncateEchoes("images[2].width: 0 is not positive"), "images[2].width: 0 is not positive");
});

Deno.test("quoteClient quotes short strings whole and long ones cut", () => {
  assertEquals(quoteClient("x"), '"x"');
  const q = quoteClient("y".repeat(1000));
  assert(q.length <= ECHO_MAX + 20 && q.endsWith("(1000 chars)"), q);
});

Deno.test("a path longer than the OS allows is INVALID_ARGUMENT naming the field, before any fs call", async () => {
  for (const path of ["a".repeat(5000), `dir/${"b".repeat(300)}/x`]) {
    let error: unknown;
    try {
      checkPathLength(path, "path");
    } catch (e) {
      error = e;
    }
    assert(error instanceof InvalidArgumentError, String(error));
    assert(error.message.startsWith("path: "), error.message);
    assert(error.message.length < 300, error.message);
  }
  const root = await Deno.makeTempDir();
  try {
    let error: unknown;
    try {
      await resolveInsideRoot(root, "c".repeat(5000), "path", { mustExist: true });
    } catch (e) {
      error = e;
    }
    assert(error instanceof InvalidArgumentError, String(error));
  } finally {
    await Deno.remove(root, { recursive: true });
  }
  checkPathLength(`ok/${"d".repeat(255)}`, "path"); // exactly NAME_MAX is allowed
});
