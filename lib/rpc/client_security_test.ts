/** Client credentials from RDPO_[TARGET_]CLIENT_*: precedence, the token hook, its file's rotation. */
import * as grpc from "@grpc/grpc-js";
import { assertEquals, assertThrows } from "../testing/assert.ts";
import type { ClientCallInfo } from "./client.ts";
import { clientSecurityFromEnv, openClientSecurity, withSecurity } from "./client_security.ts";
import { TlsConfigError } from "./tls.ts";

Deno.test("client security: a per-target variable wins over the general one", () => {
  const env: Record<string, string> = {
    RDPO_CLIENT_TOKEN_FILE: "/all",
    RDPO_POLICY_CLIENT_TOKEN_FILE: "/policy",
    RDPO_CLIENT_TLS_CA: "/ca.crt",
    RDPO_CLIENT_TLS: "yes",
  };
  const get = (k: string) => env[k];
  assertEquals(clientSecurityFromEnv("POLICY", get).tokenFile, "/policy");
  assertEquals(clientSecurityFromEnv("REWARD", get).tokenFile, "/all");
  assertEquals(clientSecurityFromEnv(undefined, get).caFile, "/ca.crt");
  assertEquals(clientSecurityFromEnv(undefined, get).tls, true);
  assertEquals(clientSecurityFromEnv(undefined, () => undefined).tls, undefined);
});

function sentAuthorization(security: ReturnType<typeof openClientSecurity>): string | undefined {
  const metadata = new grpc.Metadata();
  const call = { service: "s", method: "m", path: "/s/m", kind: "unary", metadata } as ClientCallInfo;
  for (const hook of withSecurity({}, security).onCall ?? []) hook(call);
  return metadata.get("authorization")[0] as string | undefined;
}

Deno.test("client security: the token file is sent as a bearer token and re-read on SIGHUP", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "rdpo-client-sec-" });
  const file = `${dir}/token`;
  Deno.writeTextFileSync(file, "first-token\n");
  try {
    const s = openClientSecurity({ tokenFile: file, reloadIntervalMs: 0 });
    assertEquals(s.summary, "plaintext, bearer token");
    assertEquals(sentAuthorization(s), "Bearer first-token");
    Deno.writeTextFileSync(file, "second-token\n");
    Deno.kill(Deno.pid, "SIGHUP");
    // The signal arrives asynchronously (the poll is off here).
    let sent = sentAuthorization(s);
    for (let i = 0; i < 100 && sent !== "Bearer second-token"; i++) {
      await new Promise((r) => setTimeout(r, 20));
      sent = sentAuthorization(s);
    }
    assertEquals(sent, "Bearer second-token");
    s.close();
    const none = openClientSecurity({});
    assertEquals(sentAuthorization(none), undefined);
    assertEquals(none.summary, "plaintext");
    Deno.writeTextFileSync(file, "two tokens\n");
    assertThrows(() => openClientSecurity({ tokenFile: file }), TlsConfigError, "one token on one line");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("client security: TLS to an IP address needs a server name; a certificate needs its CA", () => {
  assertThrows(
    () => openClientSecurity({ caFile: "/ca.crt" }, "10.0.0.7:50051"),
    TlsConfigError,
    "RDPO_CLIENT_TLS_SERVER_NAME",
  );
  assertThrows(
    () => openClientSecurity({ certFile: "/c.crt", keyFile: "/c.key", serverName: "x" }, "10.0.0.7:50051"),
    TlsConfigError,
    "needs the CA",
  );
  const roots = openClientSecurity({ tls: true }, "reward.rdpo.svc:50052");
  assertEquals(roots.summary, "TLS");
  roots.close();
});
