/**
 * Test certificate chains made with openssl (Debian's): a CA, a server certificate for
 * localhost / 127.0.0.1, and a client certificate, all X.509 v3 with the key usages rustls
 * (Deno's TLS) insists on. Tests skip with a reason where openssl is absent.
 */
import { join } from "node:path";

export interface TestPki {
  dir: string;
  caCert: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
}

/** Why TLS tests cannot run here, or undefined when openssl works. */
export function opensslMissing(): string | undefined {
  try {
    const out = new Deno.Command("openssl", { args: ["version"], stdout: "null", stderr: "null" })
      .outputSync();
    return out.success ? undefined : "openssl version failed";
  } catch {
    return "openssl is not installed (apt-get install openssl)";
  }
}

function openssl(cwd: string, args: string[]): void {
  const out = new Deno.Command("openssl", { args, cwd, stdout: "piped", stderr: "piped" }).outputSync();
  if (!out.success) {
    throw new Error(`openssl ${args.join(" ")}: ${new TextDecoder().decode(out.stderr).slice(0, 500)}`);
  }
}

/** Makes a CA and a server and client certificate it signed, under `dir/name/`. */
export function makeTestPki(dir: string, name = "pki", cn = "rdpo-test-ca"): TestPki {
  const d = join(dir, name);
  Deno.mkdirSync(d, { recursive: true });
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  openssl(d, [
    "req",
    "-x509",
    ...ec,
    "-keyout",
    "ca.key",
    "-out",
    "ca.crt",
    "-days",
    "2",
    "-subj",
    `/CN=${cn}`,
  ]);
  Deno.writeTextFileSync(
    join(d, "server.ext"),
    "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nkeyUsage=digitalSignature\n",
  );
  Deno.writeTextFileSync(join(d, "client.ext"), "extendedKeyUsage=clientAuth\nkeyUsage=digitalSignature\n");
  for (const who of ["server", "client"]) {
    openssl(d, [
      "req",
      ...ec,
      "-keyout",
      `${who}.key`,
      "-out",
      `${who}.csr`,
      "-subj",
      `/CN=rdpo-test-${who}`,
    ]);
    openssl(d, [
      "x509",
      "-req",
      "-in",
      `${who}.csr`,
      "-CA",
      "ca.crt",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-out",
      `${who}.crt`,
      "-days",
      "2",
      "-extfile",
      `${who}.ext`,
    ]);
  }
  return {
    dir: d,
    caCert: join(d, "ca.crt"),
    serverCert: join(d, "server.crt"),
    serverKey: join(d, "server.key"),
    clientCert: join(d, "client.crt"),
    clientKey: join(d, "client.key"),
  };
}

/** Copies a file over another by rename (atomic, as a Secret-volume rotation is). */
export function replaceFile(from: string, to: string): void {
  const tmp = `${to}.new`;
  Deno.copyFileSync(from, tmp);
  Deno.renameSync(tmp, to);
}
