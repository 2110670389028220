/**
 * The reward service as a real process with mutual TLS and a token table, called by two
 * independent peers: our grpc-js client (lib/rpc/client_security.ts) and Python grpcio (Debian's
 * python3-grpcio, test/support/grpc_peer.py). Both must: connect with the right certificate,
 * be refused without a client certificate, with one from another CA, or when trusting another CA;
 * get UNAUTHENTICATED without a token and PERMISSION_DENIED with a weaker one on an admin RPC;
 * and, after the certificates are rotated and the process gets SIGHUP, trust only the new CA,
 * with the same process still serving. Also: a non-loopback bind with no TLS and no tokens is
 * refused with a reason.
 */
import { fileURLToPath } from "node:url";
import { Health } from "../gen/grpc/health/v1/health_pb.ts";
import { RewardService } from "../gen/rdpo/v1/reward_pb.ts";
import { ServiceProcess } from "../lib/process/service_process.ts";
import { createClient } from "../lib/rpc/client.ts";
import { openClientSecurity, withSecurity } from "../lib/rpc/client_security.ts";
import { Code, RpcError } from "../lib/rpc/status.ts";
import { makeTestPki, opensslMissing, replaceFile, type TestPki } from "../lib/rpc/testing_tls.ts";
import { assert, assertEquals } from "../lib/testing/assert.ts";

const PYTHON = "/usr/bin/python3";
const PEER_SCRIPT = fileURLToPath(new URL("./support/grpc_peer.py", import.meta.url));

function pythonGrpcMissing(): string | undefined {
  try {
    const out = new Deno.Command(PYTHON, { args: ["-c", "import grpc"], stdout: "null", stderr: "null" })
      .outputSync();
    return out.success ? undefined : "python3-grpcio is not installed (apt-get install python3-grpcio)";
  } catch {
    return `${PYTHON} is absent`;
  }
}

const noOpenssl = opensslMissing();
const noPython = pythonGrpcMissing();
if (noOpenssl) console.error(`secure_peer_test: skipped: ${noOpenssl}`);
else if (noPython) console.error(`secure_peer_test: the Python peer is skipped: ${noPython}`);

interface Conn {
  ca?: string;
  cert?: string;
  key?: string;
}
interface PeerCall {
  path: string;
  token?: string;
}
type Peer = (target: string, conn: Conn, calls: PeerCall[]) => Promise<string[]>;

const codeName = (n: number) => Object.entries(Code).find(([, v]) => v === n)?.[0] ?? String(n);

/** Our own client: createClient with the credentials client_security.ts builds. */
const grpcJsPeer: Peer = async (target, conn, calls) => {
  const security = openClientSecurity({
    caFile: conn.ca,
    certFile: conn.cert,
    keyFile: conn.key,
    serverName: "localhost",
    reloadIntervalMs: 0,
  }, target);
  const options = withSecurity({}, security);
  const health = createClient(Health, target, options);
  const reward = createClient(RewardService, target, options);
  const codes: string[] = [];
  try {
    for (const call of calls) {
      const metadata: Record<string, string> = call.token ? { authorization: `Bearer ${call.token}` } : {};
      const o = { timeoutMs: 10_000, metadata };
      try {
        if (call.path.endsWith("/Check")) await health.check({}, o);
        else if (call.path.endsWith("/ListScorers")) await reward.listScorers({}, o);
        else if (call.path.endsWith("/SetAlias")) await reward.setAlias({}, o);
        else throw new Error(`grpcJsPeer: no mapping for ${call.path}`);
        codes.push("OK");
      } catch (e) {
        if (!(e instanceof RpcError)) throw e;
        codes.push(codeName(e.code));
      }
    }
  } finally {
    health.close();
    reward.close();
    security.close();
  }
  return codes;
};

/** Python grpcio over raw bytes (empty requests). */
const pythonPeer: Peer = async (target, conn, calls) => {
  const child = new Deno.Command(PYTHON, {
    args: [PEER_SCRIPT],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    env: { GRPC_VERBOSITY: "NONE" },
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(JSON.stringify({
    target,
    server_name: "localhost",
    ca: conn.ca ?? null,
    cert: conn.cert ?? null,
    key: conn.key ?? null,
    calls: calls.map((c) => ({ path: c.path, request_hex: "", token: c.token ?? null })),
  })));
  await writer.close();
  const out = await child.output();
  const lines = new TextDecoder().decode(out.stdout).trim().split("\n").filter(Boolean);
  assert(out.success, `python peer failed: ${new TextDecoder().decode(out.stderr).slice(0, 500)}`);
  return lines.map((l) => (JSON.parse(l) as { code: string }).code);
};

const TOKENS = { read: "peer-read-token-0123456789", admin: "peer-admin-token-0123456789" };
const CHECK = "/grpc.health.v1.Health/Check";
const LIST = "/rdpo.v1.RewardService/ListScorers";
const ALIAS = "/rdpo.v1.RewardService/SetAlias";

/** What each peer must see; `refused` marks a connection that must not be established. */
async function expectPeer(peer: Peer, name: string, target: string, a: TestPki, b: TestPki) {
  const good: Conn = { ca: a.caCert, cert: a.clientCert, key: a.clientKey };
  const calls = [
    { path: CHECK },
    { path: LIST, token: TOKENS.read },
    { path: LIST },
    { path: ALIAS },
    { path: ALIAS, token: TOKENS.read },
    { path: ALIAS, token: TOKENS.admin },
  ];
  const codes = await peer(target, good, calls);
  assertEquals(
    codes.slice(0, 5),
    ["OK", "OK", "UNAUTHENTICATED", "UNAUTHENTICATED", "PERMISSION_DENIED"],
    name,
  );
  // The admin token reaches the handler, which rejects the empty request on its merits.
  assert(
    !["OK", "UNAUTHENTICATED", "PERMISSION_DENIED"].includes(codes[5]),
    `${name}: admin SetAlias ${codes[5]}`,
  );
  for (
    const [what, conn] of [
      ["no client certificate", { ca: a.caCert }],
      ["a client certificate from another CA", { ca: a.caCert, cert: b.clientCert, key: b.clientKey }],
      ["trusting another CA", { ca: b.caCert, cert: a.clientCert, key: a.clientKey }],
    ] as const
  ) {
    const [code] = await peer(target, conn, [{ path: CHECK }]);
    assertEquals(code, "UNAVAILABLE", `${name}, ${what}`);
  }
}

Deno.test({
  name: "secure peers: mTLS + tokens on the reward process, grpc-js and Python grpcio, rotation on SIGHUP",
  ignore: !!noOpenssl,
  sanitizeResources: false,
  async fn() {
    const dir = Deno.makeTempDirSync({ prefix: "rdpo-peer-" });
    const a = makeTestPki(dir, "a", "ca-a");
    const b = makeTestPki(dir, "b", "ca-b");
    const tokens = `${dir}/tokens.yaml`;
    Deno.writeTextFileSync(
      tokens,
      `tokens:\n  - { name: dash, role: read, token: "${TOKENS.read}" }\n` +
        `  - { name: ops, role: admin, token: "${TOKENS.admin}" }\n`,
    );
    // The files the service reads; rotation replaces them in place.
    const live = { cert: `${dir}/tls.crt`, key: `${dir}/tls.key`, ca: `${dir}/client-ca.crt` };
    replaceFile(a.serverCert, live.cert);
    replaceFile(a.serverKey, live.key);
    replaceFile(a.caCert, live.ca);
    const reward = new ServiceProcess("services/reward/main.ts", [
      "--tls-cert",
      live.cert,
      "--tls-key",
      live.key,
      "--tls-client-ca",
      live.ca,
      "--auth-tokens-file",
      tokens,
      "--tls-reload-ms",
      "0",
    ]);
    const peers: [string, Peer][] = [["grpc-js", grpcJsPeer]];
    if (!noPython) peers.push(["python grpcio", pythonPeer]);
    try {
      const target = await reward.start();
      for (const [name, peer] of peers) await expectPeer(peer, name, target, a, b);

      // Rotation: the server certificate and the client CA move to CA b; SIGHUP, no restart.
      replaceFile(b.serverKey, live.key);
      replaceFile(b.serverCert, live.cert);
      replaceFile(b.caCert, live.ca);
      reward.signal("SIGHUP");
      const rotated: Conn = { ca: b.caCert, cert: b.clientCert, key: b.clientKey };
      let code = "";
      for (let i = 0; i < 50 && code !== "OK"; i++) {
        [code] = await grpcJsPeer(target, rotated, [{ path: CHECK }]);
        if (code !== "OK") await new Promise((r) => setTimeout(r, 100));
      }
      for (const [name, peer] of peers) {
        assertEquals(
          await peer(target, rotated, [{ path: LIST, token: TOKENS.read }]),
          ["OK"],
          `${name}, rotated`,
        );
        const old = await peer(target, { ca: a.caCert, cert: a.clientCert, key: a.clientKey }, [{
          path: CHECK,
        }]);
        assertEquals(old, ["UNAVAILABLE"], `${name}: the old chain is refused after the rotation`);
      }
      assertEquals(reward.address, target, "the same process serves throughout");
    } finally {
      await reward.stop();
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "secure peers: a non-loopback bind with neither TLS nor tokens refuses to start and says why",
  async fn() {
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        fileURLToPath(new URL("../services/reward/main.ts", import.meta.url)),
        "--host",
        "0.0.0.0",
      ],
      stdout: "piped",
      stderr: "piped",
      env: { RDPO_INSECURE: "", REWARD_INSECURE: "" },
    }).spawn();
    // Should the guard fail, the service would listen: end it rather than wait forever.
    const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
    const out = await child.output();
    clearTimeout(timer);
    const stderr = new TextDecoder().decode(out.stderr);
    assertEquals(out.code, 2, stderr);
    assert(/refusing to serve a non-loopback address/.test(stderr) && stderr.includes("--insecure"), stderr);
    assertEquals(new TextDecoder().decode(out.stdout), "", "it never listened");
  },
});
