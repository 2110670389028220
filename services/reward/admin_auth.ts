/**
 * Admin authorization of the management RPCs (LoadScorer, UnloadScorer, SetAlias): when an admin
 * token is configured (--admin-token / REWARD_ADMIN_TOKEN), the call must carry metadata
 * `authorization: Bearer <token>`. Missing (or not a Bearer credential) -> UNAUTHENTICATED; a
 * different token -> PERMISSION_DENIED. Without a configured token the RPCs are open (loopback /
 * trusted-network deployments). Pure: takes the header value, not gRPC metadata.
 */
import { timingSafeEqual } from "node:crypto";
import { PermissionDeniedError, UnauthenticatedError } from "../../lib/errors.ts";

const encoder = new TextEncoder();

/** Throws unless `authorization` (the header value, if any) carries `adminToken`. */
export function checkAdminToken(
  adminToken: string | undefined,
  authorization: string | undefined,
  rpc: string,
): void {
  if (!adminToken) return;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? "");
  if (!match) {
    throw new UnauthenticatedError(
      `${rpc} is an admin call: send metadata "authorization: Bearer <admin token>"`,
    );
  }
  if (!sameSecret(match[1], adminToken)) {
    throw new PermissionDeniedError(`${rpc}: the admin token is not valid`);
  }
}

/** Constant-time comparison (no early exit on the first differing byte). */
function sameSecret(given: string, expected: string): boolean {
  const a = encoder.encode(given);
  const b = encoder.encode(expected);
  // Compare equal-length buffers so the timing does not reveal the position of a difference.
  const padded = new Uint8Array(b.length);
  padded.set(a.subarray(0, b.length));
  return timingSafeEqual(padded, b) && a.length === b.length;
}
