/**
 * Admin authorization of the management RPCs (LoadScorer, UnloadScorer, SetAlias) for an
 * in-process RewardService (addRewardService's `adminToken` option): the one-token case of the
 * general mechanism in lib/rpc/auth.ts, which the service process uses instead (its --admin-token
 * becomes an admin entry of the token table, services/reward/main.ts). Missing (or not a Bearer
 * credential) -> UNAUTHENTICATED; a different token -> PERMISSION_DENIED. Without a configured
 * token the RPCs are open. Pure: takes the header value, not gRPC metadata.
 */
import { PermissionDeniedError, UnauthenticatedError } from "../../lib/errors.ts";
import { authorize, TokenTable } from "../../lib/rpc/auth.ts";
import { Code } from "../../lib/rpc/status.ts";

/** Throws unless `authorization` (the header value, if any) carries `adminToken`. */
export function checkAdminToken(
  adminToken: string | undefined,
  authorization: string | undefined,
  rpc: string,
): void {
  if (!adminToken) return;
  const table = new TokenTable([TokenTable.entry("admin-token", "admin", adminToken)]);
  const decision = authorize(
    { tokens: () => table, access: () => "admin" },
    "rdpo.v1.RewardService",
    rpc,
    authorization,
  );
  if (decision.ok) return;
  const { code, details } = decision.status;
  throw code === Code.UNAUTHENTICATED
    ? new UnauthenticatedError(details)
    : new PermissionDeniedError(details);
}
