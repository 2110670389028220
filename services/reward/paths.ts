/**
 * Safe resolution of bundle paths: a LoadScorer request names a folder relative to the service's
 * model root, and nothing it names may reach outside that root — not by `..` segments, not by an
 * absolute path elsewhere, not by a symlink inside the root that points out of it (checked on the
 * real path, after every link is followed). The checks themselves are lib/fs/safe_path.ts; this
 * adds the bundle rules (no `..` segments, must be a folder).
 */
import { InvalidArgumentError } from "../../lib/errors.ts";
import { isInside, resolveInsideRoot } from "../../lib/fs/safe_path.ts";

/** True when `child` is `root` or lies below it (both absolute and normalized). */
export { isInside };

/**
 * Resolves `requested` (relative to `modelRoot`, or absolute inside it) to the real, absolute path
 * of an existing folder inside the real model root.
 * - `..` segments: InvalidArgumentError (they are never needed to name a folder inside the root);
 * - an absolute path outside the root, or a symlink leading out of it: PermissionDeniedError;
 * - a path that does not exist: NotFoundError; one that is not a folder: InvalidArgumentError.
 */
export async function resolveBundlePath(
  modelRoot: string,
  requested: string,
  field = "bundle",
): Promise<string> {
  if (requested.split(/[\\/]+/).includes("..")) {
    throw new InvalidArgumentError(
      field,
      `${JSON.stringify(requested)} contains a ".." segment; name a folder inside the model root`,
    );
  }
  const real = await resolveInsideRoot(modelRoot, requested, field, { mustExist: true });
  if (!(await Deno.stat(real)).isDirectory) {
    throw new InvalidArgumentError(
      field,
      `${JSON.stringify(requested)} is not a folder (a bundle is a folder)`,
    );
  }
  return real;
}

/**
 * Checks that `path` (e.g. a file a bundle manifest names) really lies inside `modelRoot` once
 * symlinks are followed; returns its real path. PermissionDeniedError names `field` otherwise.
 */
export function realPathInside(modelRoot: string, path: string, field: string): Promise<string> {
  return resolveInsideRoot(modelRoot, path, field, { mustExist: true });
}
