/**
 * Path fields longer than the OS allows (PATH_MAX 4096 bytes, NAME_MAX 255 bytes per component on
 * Linux) are INVALID_ARGUMENT before any file-system call sees them; the call would otherwise fail
 * with ENAMETOOLONG, which maps to INTERNAL (and its message would echo the whole path).
 */
import { quoteClient } from "../echo.ts";
import { InvalidArgumentError } from "../errors.ts";

export const PATH_MAX_BYTES = 4096;
export const NAME_MAX_BYTES = 255;

const encoder = new TextEncoder();

/** INVALID_ARGUMENT naming `field` if `path` is longer than the OS allows, whole or per component. */
export function checkPathLength(path: string, field: string): void {
  const bytes = encoder.encode(path).length;
  if (bytes > PATH_MAX_BYTES) {
    throw new InvalidArgumentError(
      field,
      `${bytes} bytes is longer than the ${PATH_MAX_BYTES} a path may have`,
    );
  }
  for (const part of path.split("/")) {
    const n = encoder.encode(part).length;
    if (n > NAME_MAX_BYTES) {
      throw new InvalidArgumentError(
        field,
        `component ${
          quoteClient(part, 40)
        } has ${n} bytes, more than the ${NAME_MAX_BYTES} a file name may have`,
      );
    }
  }
}
