/**
 * Resolves a client-supplied relative path inside a configured root folder, refusing traversal
 * (`..`), absolute paths elsewhere, and symbolic links that lead out of the root. Used wherever a
 * request names a file (reward bundles, adapter files).
 */
import { isAbsolute, join, relative, resolve } from "node:path";
import { InvalidArgumentError, PermissionDeniedError } from "../errors.ts";

function inside(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel === "" || (!rel.startsWith("..") && !isAbsolute(rel));
}

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
 * result, after resolving symbolic links, lies outside `root`. `mustExist` adds a NotFound-style check.
 */
export async function resolveInsideRoot(
  root: string,
  requested: string,
  field: string,
  { mustExist = false }: { mustExist?: boolean } = {},
): Promise<string> {
  if (typeof requested !== "string" || requested.length === 0) {
    throw new InvalidArgumentError(field, "must be a non-empty path");
  }
  if (requested.includes("\0")) throw new InvalidArgumentError(field, "must not contain NUL bytes");
  const realRoot = await Deno.realPath(root).catch(() => {
    throw new InvalidArgumentError(field, `the configured root folder ${root} does not exist`);
  });
  const lexical = resolve(realRoot, requested);
  if (!inside(realRoot, lexical)) {
    throw new PermissionDeniedError(`${field}: "${requested}" resolves outside the root folder`);
  }
  const real = await realPathAllowingMissing(lexical);
  if (!inside(realRoot, real)) {
    throw new PermissionDeniedError(
      `${field}: "${requested}" leads outside the root folder through a symbolic link`,
    );
  }
  if (mustExist) {
    try {
      await Deno.stat(real);
    } catch {
      throw new InvalidArgumentError(field, `"${requested}" does not exist under the root folder`);
    }
  }
  return real;
}
