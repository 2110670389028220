/**
 * Security settings from flags: the non-loopback refusal, flag combinations that cannot work, and
 * what the startup summary says (it never contains a secret).
 */
import { assert, assertEquals, assertThrows } from "../testing/assert.ts";
import { TokenTable } from "./auth.ts";
import { FlagError } from "./flags.ts";
import {
  isLoopback,
  openServerSecurity,
  type SecurityFlagValues,
  unprotectedBindProblem,
} from "./security.ts";

const NONE: SecurityFlagValues = { tlsReloadMs: 0, authAnonymousRead: false, insecure: false };

Deno.test("security: loopback addresses", () => {
  for (const h of ["127.0.0.1", "127.1.2.3", "localhost", "::1", "[::1]"]) assert(isLoopback(h), h);
  for (const h of ["0.0.0.0", "::", "10.0.0.5", "policy-0.policy", "128.0.0.1"]) assert(!isLoopback(h), h);
});

Deno.test("security: a non-loopback bind with neither TLS nor tokens is refused unless --insecure", () => {
  const e = assertThrows(() => openServerSecurity(NONE, "0.0.0.0"), FlagError, "refusing to serve");
  assert(e.message.includes("--insecure") && e.message.includes("--auth-tokens-file"), e.message);
  const open = openServerSecurity({ ...NONE, insecure: true }, "0.0.0.0");
  assertEquals(open.summary, "plaintext, no tokens, --insecure: every RPC is open");
  assertEquals(open.middleware, undefined);
  open.close();
  const local = openServerSecurity(NONE, "127.0.0.1");
  assertEquals(local.summary, "plaintext, no tokens");
  local.close();
});

Deno.test("security: the guard alone (unprotectedBindProblem) checks flags, not files", () => {
  assert(unprotectedBindProblem(NONE, "0.0.0.0")?.includes("refusing to serve"));
  assert(unprotectedBindProblem(NONE, "10.0.0.5")?.includes("--host 10.0.0.5"));
  assertEquals(unprotectedBindProblem(NONE, "127.0.0.1"), undefined);
  assertEquals(unprotectedBindProblem({ ...NONE, insecure: true }, "0.0.0.0"), undefined);
  assertEquals(unprotectedBindProblem({ ...NONE, authTokensFile: "/missing/tokens" }, "0.0.0.0"), undefined);
  assertEquals(unprotectedBindProblem({ ...NONE, tlsCert: "/missing/cert" }, "0.0.0.0"), undefined);
  assertEquals(unprotectedBindProblem(NONE, "0.0.0.0", 1), undefined, "an --admin-token counts as tokens");
});

Deno.test("security: tokens alone satisfy the guard, with a warning that they travel in plaintext", () => {
  const dir = Deno.makeTempDirSync({ prefix: "rdpo-sec-" });
  const file = `${dir}/tokens.yaml`;
  const secret = "a-token-that-is-long-enough";
  Deno.writeTextFileSync(file, `tokens: [{ name: t, role: train, token: "${secret}" }]\n`);
  try {
    const s = openServerSecurity({ ...NONE, authTokensFile: file }, "0.0.0.0", {
      extraTokens: [TokenTable.entry("admin-token", "admin", "legacy")],
    });
    assertEquals(s.summary, "plaintext, 2 token(s), WARNING: tokens travel unencrypted");
    assert(!s.summary.includes(secret) && s.middleware !== undefined);
    s.close();
    // Only the legacy admin token: reads stay open as before.
    const legacy = openServerSecurity(NONE, "127.0.0.1", {
      extraTokens: [TokenTable.entry("admin-token", "admin", "legacy")],
    });
    assertEquals(legacy.summary, "plaintext, 1 token(s), anonymous reads");
    legacy.close();
    Deno.writeTextFileSync(file, `tokens: [{ name: t, role: root, token: "${secret}" }]\n`);
    const bad = assertThrows(
      () => openServerSecurity({ ...NONE, authTokensFile: file }, "127.0.0.1"),
      FlagError,
    );
    assert(bad.message.includes("tokens[0].role") && !bad.message.includes(secret), bad.message);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("security: TLS flag combinations that cannot work name the flags", () => {
  assertThrows(
    () => openServerSecurity({ ...NONE, tlsCert: "/x.crt" }, "127.0.0.1"),
    FlagError,
    "--tls-cert and --tls-key",
  );
  assertThrows(
    () => openServerSecurity({ ...NONE, tlsClientCa: "/ca.crt" }, "127.0.0.1"),
    FlagError,
    "--tls-client-ca: mutual TLS needs --tls-cert",
  );
  assertThrows(
    () => openServerSecurity({ ...NONE, tlsCert: "/nope.crt", tlsKey: "/nope.key" }, "127.0.0.1"),
    FlagError,
    "TLS certificate /nope.crt: cannot read",
  );
});
