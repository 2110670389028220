/**
 * Token tables and the authorization decision, and end to end through startService: every RPC
 * of the three rdpo services against anonymous callers and each role (SECURITY.md).
 */
import type { DescMethod, DescService } from "@bufbuild/protobuf";
import { Health } from "../../gen/grpc/health/v1/health_pb.ts";
import { PolicyService } from "../../gen/rdpo/v1/policy_pb.ts";
import { RewardService } from "../../gen/rdpo/v1/reward_pb.ts";
import { TrainerService } from "../../gen/rdpo/v1/trainer_pb.ts";
import { assert, assertEquals, assertThrows } from "../testing/assert.ts";
import { ACCESS, accessOf } from "./access.ts";
import { authorize, type Role, roleAllows, TokenTable, TokenTableError } from "./auth.ts";
import { createClient } from "./client.ts";
import { createSessionClient } from "./session_client.ts";
import { startService } from "./main.ts";
import { Code, RpcError } from "./status.ts";

const TOKENS = {
  read: "read-token-0123456789",
  train: "train-token-0123456789",
  admin: "admin-token-0123456789",
};
const TABLE_YAML = `tokens:
  - { name: dashboard, role: read, token: "${TOKENS.read}" }
  - { name: trainer-1, role: train, token: "${TOKENS.train}" }
  - name: ops
    role: admin
    sha256: "${await sha256Hex(TOKENS.admin)}"
`;

async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

Deno.test("auth: a token table parses plain and hashed tokens; bad entries name the field, never a token", () => {
  const table = TokenTable.parse(TABLE_YAML, "tokens.yaml");
  assertEquals(table.size, 3);
  assertEquals(table.find(TOKENS.train)?.name, "trainer-1");
  assertEquals(table.find(TOKENS.admin)?.role, "admin");
  assertEquals(table.find("train-token-012345678"), undefined);
  const secret = "a-secret-that-is-long-enough";
  const bad: [string, string][] = [
    [`tokens: [{ name: x, role: root, token: "${secret}" }]`, "tokens[0].role"],
    [`tokens: [{ name: x, role: read, token: short }]`, "shorter than 16"],
    [`tokens: [{ name: x, role: read }]`, "exactly one of token"],
    [`tokens: [{ name: "a b", role: read, token: "${secret}" }]`, "tokens[0].name"],
    [
      `tokens: [{ name: x, role: read, token: "${secret}" }, { name: x, role: read, token: "${secret}2" }]`,
      "twice",
    ],
    [`tokens: [{ name: x, role: read, token: "${secret}" `, "not valid YAML"],
    [`users: []`, 'expected a "tokens:" list'],
  ];
  for (const [text, message] of bad) {
    const e = assertThrows(() => TokenTable.parse(text, "t.yaml"), TokenTableError, message);
    assert(!(e as Error).message.includes(secret), `the error quotes the token: ${(e as Error).message}`);
  }
});

Deno.test("auth: roles are ordered read < train < admin", () => {
  const roles: Role[] = ["read", "train", "admin"];
  const allowed = roles.map((have) => roles.map((need) => roleAllows(have, need)));
  assertEquals(allowed, [[true, false, false], [true, true, false], [true, true, true]]);
});

Deno.test("auth: decisions: missing -> UNAUTHENTICATED, unknown or too weak -> PERMISSION_DENIED", () => {
  const table = TokenTable.parse(TABLE_YAML);
  const options = { tokens: () => table, access: accessOf };
  const svc = "rdpo.v1.PolicyService";
  const codeName = (n: number) => Object.entries(Code).find(([, v]) => v === n)?.[0];
  const decide = (method: string, header?: string, anonymousRead = false) => {
    const d = authorize({ ...options, anonymousRead }, svc, method, header);
    return d.ok ? d.caller : codeName(d.status.code);
  };
  assertEquals(decide("TrainStep"), "UNAUTHENTICATED");
  assertEquals(decide("TrainStep", "Basic abc"), "UNAUTHENTICATED");
  assertEquals(decide("TrainStep", "Bearer nope"), "PERMISSION_DENIED");
  assertEquals(decide("TrainStep", `Bearer ${TOKENS.read}`), "PERMISSION_DENIED");
  assertEquals(decide("TrainStep", `bearer  ${TOKENS.train} `), "trainer-1");
  assertEquals(decide("SaveAdapter", `Bearer ${TOKENS.train}`), "PERMISSION_DENIED");
  assertEquals(decide("SaveAdapter", `Bearer ${TOKENS.admin}`), "ops");
  assertEquals(decide("GetInfo"), "UNAUTHENTICATED");
  assertEquals(decide("GetInfo", undefined, true), "anonymous");
  assertEquals(decide("TrainStep", undefined, true), "UNAUTHENTICATED");
  assertEquals(decide("NewMethodNobodyClassified", `Bearer ${TOKENS.admin}`), "PERMISSION_DENIED");
  const weak = authorize(options, svc, "SaveAdapter", `Bearer ${TOKENS.train}`);
  assert(
    !weak.ok && weak.status.details === 'SaveAdapter needs role admin; token "trainer-1" has role train',
  );
  assert(!weak.ok && !weak.status.details.includes(TOKENS.train));
});

const SERVICES = [RewardService, PolicyService, TrainerService] as unknown as DescService[];

Deno.test("access: every method of every served service has a rule", () => {
  for (const service of [...SERVICES, Health as unknown as DescService]) {
    for (const method of service.methods) {
      assert(
        accessOf(service.typeName, method.name) !== undefined,
        `${service.typeName}/${method.name}: no rule`,
      );
    }
    assertEquals(Object.keys(ACCESS[service.typeName]).sort(), service.methods.map((m) => m.name).sort());
  }
});

/** Handlers for every method that record the call and answer an empty message. */
function recordingImpl(service: DescService, reached: string[]): Record<string, unknown> {
  const impl: Record<string, unknown> = {};
  for (const m of service.methods) {
    if (m.name === "Session") continue; // served by the adapter from the unary handlers
    const record = () => reached.push(`${service.typeName}/${m.name}`);
    impl[m.localName] = m.methodKind === "server_streaming"
      ? async function* () {
        record();
        yield {};
      }
      : () => (record(), {});
  }
  return impl;
}

async function callOnce(
  client: Record<string, unknown>,
  method: DescMethod,
  token?: string,
): Promise<string> {
  const options = { timeoutMs: 5000, metadata: token ? { authorization: `Bearer ${token}` } : {} };
  const fn = client[method.localName] as (req: unknown, o: unknown) => unknown;
  try {
    if (method.methodKind === "server_streaming") {
      for await (const _ of fn({}, options) as AsyncIterable<unknown>) { /* drain */ }
    } else if (method.methodKind === "bidi_streaming") {
      // The Session carrier with no messages: only its own access rule decides.
      for await (const _ of fn((async function* () {})(), options) as AsyncIterable<unknown>) { /* drain */ }
    } else {
      await fn({}, options);
    }
    return "OK";
  } catch (e) {
    if (!(e instanceof RpcError)) throw e;
    return Object.entries(Code).find(([, v]) => v === e.code)?.[0] ?? String(e.code);
  }
}

Deno.test("auth: end to end, every mutating RPC refuses an anonymous caller and a weaker role", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "rdpo-auth-" });
  const file = `${dir}/tokens.yaml`;
  Deno.writeTextFileSync(file, TABLE_YAML);
  const reached: string[] = [];
  const logged: string[] = [];
  const running = await startService({
    name: "authz",
    args: ["--port", "0", "--auth-tokens-file", file],
    env: () => undefined,
    telemetry: false,
    log: (m) => logged.push(m),
    setup(server) {
      for (const s of SERVICES) server.addService(s as never, recordingImpl(s, reached) as never);
    },
  });
  try {
    const health = createClient(Health, running.address.address);
    assertEquals((await health.check({})).status, 1, "health stays public");
    health.close();
    for (const service of SERVICES) {
      const client = createClient(service as never, running.address.address) as unknown as Record<
        string,
        unknown
      >;
      // The same calls as Session messages must meet the same rule per method (session.ts).
      const hasSession = service.methods.some((m) => m.name === "Session");
      const viaSession = hasSession
        ? createSessionClient(
          service as never,
          createClient(service as never, running.address.address),
        ) as unknown as Record<
          string,
          unknown
        >
        : undefined;
      for (const method of service.methods) {
        const need = accessOf(service.typeName, method.name) as Role;
        const where = `${service.typeName}/${method.name} (${need})`;
        const before = reached.length;
        assertEquals(await callOnce(client, method), "UNAUTHENTICATED", `${where}, anonymous`);
        assertEquals(
          await callOnce(client, method, "not-a-token"),
          "PERMISSION_DENIED",
          `${where}, unknown token`,
        );
        for (const role of ["read", "train", "admin"] as const) {
          const expected = roleAllows(role, need) ? "OK" : "PERMISSION_DENIED";
          assertEquals(await callOnce(client, method, TOKENS[role]), expected, `${where}, role ${role}`);
        }
        const allowedRoles = (["read", "train", "admin"] as const).filter((r) => roleAllows(r, need)).length;
        if (viaSession && method.methodKind === "unary") {
          assertEquals(
            await callOnce(viaSession, method),
            "UNAUTHENTICATED",
            `${where} by Session, anonymous`,
          );
          for (const role of ["read", "train", "admin"] as const) {
            const expected = roleAllows(role, need) ? "OK" : "PERMISSION_DENIED";
            assertEquals(
              await callOnce(viaSession, method, TOKENS[role]),
              expected,
              `${where} by Session, ${role}`,
            );
          }
        }
        const handlerRuns = method.methodKind === "bidi_streaming"
          ? 0 // the carrier runs no handler of its own
          : allowedRoles * (viaSession && method.methodKind === "unary" ? 2 : 1);
        assertEquals(
          reached.length - before,
          handlerRuns,
          `${where}: the handler ran only for allowed callers`,
        );
      }
      (client.close as () => void)();
      (viaSession?.close as (() => void) | undefined)?.();
    }
    // (Other test files in this process may send SIGHUP: "reloaded" lines can follow.)
    assertEquals(logged[0], "security: plaintext, 3 token(s)");
    for (const line of logged) {
      assert(!Object.values(TOKENS).some((t) => line.includes(t)), `a token was logged: ${line}`);
    }
  } finally {
    await running.stop();
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("auth: a rewritten token file takes effect without a restart", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "rdpo-auth-reload-" });
  const file = `${dir}/tokens.yaml`;
  Deno.writeTextFileSync(file, TABLE_YAML);
  const running = await startService({
    name: "authz",
    args: ["--port", "0", "--auth-tokens-file", file, "--tls-reload-ms", "0"],
    env: () => undefined,
    telemetry: false,
    log: () => {},
    setup(server) {
      server.addService(RewardService, recordingImpl(RewardService as never, []) as never);
    },
  });
  try {
    const client = createClient(RewardService, running.address.address);
    const method = (RewardService as unknown as DescService).methods.find((m) => m.name === "SetAlias")!;
    const asClient = client as unknown as Record<string, unknown>;
    assertEquals(await callOnce(asClient, method, TOKENS.admin), "OK");
    const rotated = "rotated-admin-token-0123456789";
    Deno.writeTextFileSync(file, `tokens: [{ name: ops, role: admin, token: "${rotated}" }]\n`);
    // What SIGHUP does (the poll is off in this test).
    Deno.kill(Deno.pid, "SIGHUP");
    let code = "";
    for (let i = 0; i < 50 && code !== "PERMISSION_DENIED"; i++) {
      code = await callOnce(asClient, method, TOKENS.admin);
      if (code !== "PERMISSION_DENIED") await new Promise((r) => setTimeout(r, 20));
    }
    assertEquals(code, "PERMISSION_DENIED", "the old token is refused after the reload");
    assertEquals(await callOnce(asClient, method, rotated), "OK");
    client.close();
  } finally {
    await running.stop();
    Deno.removeSync(dir, { recursive: true });
  }
});
