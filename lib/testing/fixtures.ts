/**
 * Locates the shared reference fixtures (`../shared/fixtures` beside the checkout, or
 * `RDPO_SHARED_DIR`). Parity tests read every value from there and skip, saying what is missing,
 * when a folder is absent.
 */
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** Repository root (the folder holding deno.json). */
export const repoRoot: string = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** The shared folder: `$RDPO_SHARED_DIR` or `<repo>/../shared`. */
export function sharedDir(): string {
  return Deno.env.get("RDPO_SHARED_DIR") ?? resolve(repoRoot, "..", "shared");
}

/** Absolute path of a fixture file or folder, e.g. `fixturePath("golden", "ddim")`. */
export function fixturePath(...parts: string[]): string {
  return join(sharedDir(), "fixtures", ...parts);
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

const announced = new Set<string>();

/**
 * Returns true when every path exists. Otherwise prints one line naming what is missing (once per
 * path) so a skipped test says why, and returns false: use as `ignore: !hasFixtures(...)`.
 */
export function hasFixtures(...paths: string[]): boolean {
  const missing = paths.filter((p) => !exists(p));
  for (const p of missing) {
    if (!announced.has(p)) {
      announced.add(p);
      console.warn(
        `skip: fixture not found: ${p} (set RDPO_SHARED_DIR or place shared/ beside the checkout)`,
      );
    }
  }
  return missing.length === 0;
}
