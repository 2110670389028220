import { assertThrows } from "../../lib/testing/assert.ts";
import { PermissionDeniedError, UnauthenticatedError } from "../../lib/errors.ts";
import { checkAdminToken } from "./admin_auth.ts";

Deno.test("admin auth: open without a configured token", () => {
  checkAdminToken(undefined, undefined, "LoadScorer");
  checkAdminToken("", "Bearer anything", "LoadScorer");
});

Deno.test("admin auth: missing or malformed credentials are UNAUTHENTICATED, a wrong token PERMISSION_DENIED", () => {
  checkAdminToken("tok", "Bearer tok", "SetAlias");
  checkAdminToken("tok", "bearer   tok ", "SetAlias");
  assertThrows(
    () => checkAdminToken("tok", undefined, "SetAlias"),
    UnauthenticatedError,
    "SetAlias needs a token with role admin",
  );
  assertThrows(() => checkAdminToken("tok", "tok", "SetAlias"), UnauthenticatedError);
  assertThrows(() => checkAdminToken("tok", "Basic tok", "SetAlias"), UnauthenticatedError);
  assertThrows(() => checkAdminToken("tok", "Bearer tok2", "SetAlias"), PermissionDeniedError, "not valid");
  assertThrows(() => checkAdminToken("tok", "Bearer to", "SetAlias"), PermissionDeniedError);
  assertThrows(() => checkAdminToken("tok", "Bearer TOK", "SetAlias"), PermissionDeniedError);
});
