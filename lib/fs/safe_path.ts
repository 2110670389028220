/**
 * Resolves a client-supplied relative path inside a configured root folder, refusing traversal
 * (`..`), absolute paths elsewhere, and symbolic links that lead out of the root. Used wherever a
 * request names a file (reward bundles, adapter files).
 */
import { isAbsolute, join, relative, resolve, sep } from "node:path";
import { InvalidArgumentError, NotFoundError, PermissionDeniedError } from "../errors.ts";
import { quoteClient } from "../echo.ts";
import { checkPathLength } from "./path_limits.ts";

/** Whether `child` is `root` or lies below it (both absolute, already resolved). */
export function isInside(root: string, child: string): boolean {
  const rel = relative(root, child);
  return rel === "" || (rel !== ".." && !rel.startsWith(`..${sep}`) && !isAbsolute(rel));
}

const inside = isInside;

/** Real path of `path`, or of its deepest existing ancestor joined with the rest (for new files). */
async function realPathAllowingMissing(path: string): Promise<string> {
  const missing: string[] = [];
  let cur = path;
  for (;;) {
    try {
      const real = await Deno.realPath(cur);
      return missing.length ? join(real, ...missing.reverse()) : real;
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
      const parent = resolve(cur, "..");
      if (parent === cur) return path;
      missing.push(cur.slice(parent.length + (parent.endsWith("/") ? 0 : 1)));
      cur = parent;
    }
  }
}

/**
 * Absolute real path of `requested` (relative to `root`, or absolute inside it). Throws
 * InvalidArgumentError for an empty or NUL-containing path and PermissionDeniedError when the
 * result, after resolving symbolic links, lies outside `root`. With `mustExist`, a missing path is
 * NotFoundError (or InvalidArgumentError with `missing: "invalid_argument"`, for a path that is
 * simply a bad request field).
 */
export async function resolveInsideRoot(
  root: string,
  requested: string,
  field: string,
  { mustExist = false, missing = "not_found" }: {
    mustExist?: boolean;
    missing?: "not_found" | "invalid_argument";
  } = {},
): Promise<string> {
  if (typeof requested !== "string" || requested.length === 0) {
    throw new InvalidArgumentError(field, "is empty");
  }
  if (requested.includes("\0")) throw new InvalidArgumentError(field, "must not contain NUL bytes");
  checkPathLength(requested, field);
  const realRoot = await Deno.realPath(root).catch(() => {
    throw new NotFoundError(`${field}: the configured root folder ${root} does not exist`);
  });
  const lexical = resolve(realRoot, requested);
  // An absolute path may name the root through its configured (unresolved) spelling too.
  if (!inside(realRoot, lexical) && !inside(resolve(root), lexical)) {
    throw new PermissionDeniedError(
      `${field}: ${quoteClient(requested)} is outside the root folder ${realRoot}`,
    );
  }
  // realpath of the path as written (through the configured root spelling when it used that).
  const real = await realPathAllowingMissing(lexical);
  if (!inside(realRoot, real)) {
    throw new PermissionDeniedError(
      `${field}: ${
        quoteClient(requested)
      } resolves (through a symlink) to ${real}, outside the root folder ${realRoot}`,
    );
  }
  if (mustExist) {
    try {
      await Deno.stat(real);
    } catch {
      const problem = `${quoteClient(requested)} does not exist in the root folder ${realRoot}`;
      if (missing === "invalid_argument") throw new InvalidArgumentError(field, problem);
      throw new NotFoundError(`${field}: ${problem}`);
    }
  }
  return real;
}
