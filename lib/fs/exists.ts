/**
 * Whether a path exists. Only "not found" means false; any other error (permission denied, I/O)
 * propagates, so a caller never mistakes an unreadable file for a missing one.
 * `noFollow`: test the path itself (a dangling symlink exists), as `lstat` does.
 */
export async function pathExists(path: string, options: { noFollow?: boolean } = {}): Promise<boolean> {
  try {
    await (options.noFollow ? Deno.lstat(path) : Deno.stat(path));
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}
