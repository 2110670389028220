/**
 * TLS and mutual TLS between lib/rpc servers and clients, with chains openssl makes here: TLS
 * works, plaintext and a wrong CA are refused, mTLS refuses a client without a certificate or with
 * one from another CA, and a rotated certificate is served to new connections without a restart.
 */
import { Health, HealthCheckResponse_ServingStatus as Serving } from "../../gen/grpc/health/v1/health_pb.ts";
import { assert, assertEquals } from "../testing/assert.ts";

const assertMatch = (text: string, re: RegExp) => assert(re.test(text), `expected ${re}, got: ${text}`);
import { createClient } from "./client.ts";
import { openClientSecurity, withSecurity } from "./client_security.ts";
import { createServer } from "./server.ts";
import { Code } from "./status.ts";
import { rpcFailure } from "./testing.ts";
import { makeTestPki, opensslMissing, replaceFile, type TestPki } from "./testing_tls.ts";
import { serverTls } from "./tls.ts";

const skip = opensslMissing();
if (skip) console.error(`tls_test: skipped: ${skip}`);

async function serve(pki: TestPki, mutual: boolean, reloadIntervalMs = 0) {
  const tls = serverTls(
    { certFile: pki.serverCert, keyFile: pki.serverKey, clientCaFile: mutual ? pki.caCert : undefined },
    { reloadIntervalMs, log: () => {} },
  );
  const server = createServer();
  const bound = await server.listen("127.0.0.1", 0, tls.credentials);
  return {
    tls,
    address: bound.address,
    close() {
      server.forceShutdown();
      tls.close();
    },
  };
}

/** One Health/Check over a fresh channel with `config`; resolves to "SERVING" or the failure. */
async function check(address: string, config: Parameters<typeof openClientSecurity>[0]): Promise<string> {
  const security = openClientSecurity({ serverName: "localhost", reloadIntervalMs: 0, ...config }, address);
  const client = createClient(Health, address, withSecurity({}, security));
  try {
    const r = await client.check({}, { timeoutMs: 5000 });
    return Serving[r.status];
  } catch (e) {
    return `failed: ${(e as Error).message}`;
  } finally {
    client.close();
    security.close();
  }
}

Deno.test({
  name: "tls: a client trusting the CA connects; plaintext and another CA are refused",
  ignore: !!skip,
  async fn() {
    const dir = Deno.makeTempDirSync({ prefix: "rdpo-tls-" });
    try {
      const pki = makeTestPki(dir, "a");
      const other = makeTestPki(dir, "b", "other-ca");
      const s = await serve(pki, false);
      try {
        assertEquals(await check(s.address, { caFile: pki.caCert }), "SERVING");
        assertMatch(await check(s.address, { caFile: other.caCert }), /^failed: /);
        const plain = createClient(Health, s.address);
        const e = await rpcFailure(() => plain.check({}, { timeoutMs: 3000 }));
        plain.close();
        assert(e.code === Code.UNAVAILABLE || e.code === Code.DEADLINE_EXCEEDED, `plaintext got ${e.code}`);
        // Garbage instead of a ClientHello, and a connection dropped mid-handshake: the server lives on.
        const port = Number(s.address.split(":").pop());
        for (
          const bytes of [new Uint8Array(4096).fill(0x16), new Uint8Array([0x16, 0x03, 0x01, 0x02, 0x00])]
        ) {
          const conn = await Deno.connect({ hostname: "127.0.0.1", port });
          await conn.write(bytes).catch(() => 0);
          conn.close();
        }
        assertEquals(await check(s.address, { caFile: pki.caCert }), "SERVING");
      } finally {
        s.close();
      }
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "tls: mutual TLS refuses a client without a certificate or with one from another CA",
  ignore: !!skip,
  async fn() {
    const dir = Deno.makeTempDirSync({ prefix: "rdpo-mtls-" });
    try {
      const pki = makeTestPki(dir, "a");
      const other = makeTestPki(dir, "b", "other-ca");
      const s = await serve(pki, true);
      try {
        const good = { caFile: pki.caCert, certFile: pki.clientCert, keyFile: pki.clientKey };
        assertEquals(await check(s.address, good), "SERVING");
        assertMatch(await check(s.address, { caFile: pki.caCert }), /^failed: /);
        assertMatch(
          await check(s.address, {
            caFile: pki.caCert,
            certFile: other.clientCert,
            keyFile: other.clientKey,
          }),
          /^failed: /,
        );
        assertMatch(await check(s.address, { ...good, caFile: other.caCert }), /^failed: /);
      } finally {
        s.close();
      }
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "tls: a rotated certificate is served to new connections without a restart; a bad one is ignored",
  ignore: !!skip,
  async fn() {
    const dir = Deno.makeTempDirSync({ prefix: "rdpo-rotate-" });
    try {
      const pki = makeTestPki(dir, "a");
      const next = makeTestPki(dir, "b", "next-ca");
      const s = await serve(pki, false);
      try {
        assertEquals(await check(s.address, { caFile: pki.caCert }), "SERVING");
        // A half-written rotation (garbage certificate) keeps the previous pair in use.
        Deno.writeTextFileSync(pki.serverCert, "-----BEGIN CERTIFICATE-----\nnot base64\n");
        assertEquals(s.tls.provider.reload(), false);
        assertEquals(await check(s.address, { caFile: pki.caCert }), "SERVING");
        // The real rotation: a certificate from the next CA.
        replaceFile(next.serverKey, pki.serverKey);
        replaceFile(next.serverCert, pki.serverCert);
        assertEquals(s.tls.provider.reload(), true);
        assertEquals(await check(s.address, { caFile: next.caCert }), "SERVING");
        assertMatch(await check(s.address, { caFile: pki.caCert }), /^failed: /);
      } finally {
        s.close();
      }
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "tls: a client follows a rotated CA file from its next connection on",
  ignore: !!skip,
  async fn() {
    const dir = Deno.makeTempDirSync({ prefix: "rdpo-client-rotate-" });
    try {
      const pki = makeTestPki(dir, "a");
      const next = makeTestPki(dir, "b", "next-ca");
      const caFile = `${dir}/trusted-ca.crt`;
      replaceFile(pki.caCert, caFile);
      const s = await serve(pki, false);
      const security = openClientSecurity(
        { caFile, serverName: "localhost", reloadIntervalMs: 20 },
        s.address,
      );
      const once = async () => {
        const client = createClient(Health, s.address, withSecurity({}, security));
        try {
          return Serving[(await client.check({}, { timeoutMs: 3000 })).status];
        } catch (e) {
          return `failed: ${(e as Error).message}`;
        } finally {
          client.close();
        }
      };
      try {
        assertEquals(await once(), "SERVING");
        replaceFile(next.serverKey, pki.serverKey);
        replaceFile(next.serverCert, pki.serverCert);
        s.tls.provider.reload();
        assertMatch(await once(), /^failed: /);
        replaceFile(next.caCert, caFile);
        let status = "";
        for (let i = 0; i < 100 && status !== "SERVING"; i++) {
          await new Promise((r) => setTimeout(r, 30));
          status = await once();
        }
        assertEquals(status, "SERVING");
      } finally {
        security.close();
        s.close();
      }
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});
