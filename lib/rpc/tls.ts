/**
 * TLS and mutual TLS for lib/rpc servers and clients, from PEM files that are reloaded on SIGHUP
 * and on change (reload.ts), so a cert-manager rotation needs no restart.
 *
 * grpc-js' certificate-provider credentials (its `experimental` API, the one xDS uses) take the
 * material from a provider and call `setSecureContext` on the listening server for each update;
 * new connections get the new certificate, open ones keep theirs. Its own FileWatcherCertificateProvider
 * is not used because it replaces good material with nothing when a read fails mid-rotation (the
 * server then drops every new connection); this provider validates first and keeps the last good
 * pair (certificate, key and CA are checked to parse and to belong together).
 *
 * Deno notes (checked with Deno 2.9.6): certificates must be X.509 v3 (rustls rejects v1, the
 * default of `openssl x509 -req` without extensions), and a client cannot send an IP address as
 * the TLS server name, so clients dialling an IP set `serverName` to a name in the certificate.
 */
import * as grpc from "@grpc/grpc-js";
import { Buffer } from "node:buffer";
import { createPrivateKey, X509Certificate } from "node:crypto";
import { followFiles, type Reloading } from "./reload.ts";

type CertificateProvider = grpc.experimental.CertificateProvider;
type CaListener = grpc.experimental.CaCertificateUpdateListener;
type IdentityListener = grpc.experimental.IdentityCertificateUpdateListener;

export interface TlsFiles {
  /** PEM certificate chain (leaf first). Clients: set for mTLS. */
  certFile?: string;
  /** PEM private key of the certificate. */
  keyFile?: string;
  /** PEM CA bundle: servers verify client certificates with it (mTLS), clients the server's. */
  caFile?: string;
}

export interface TlsReloadOptions {
  /** Poll period for changed files (ms); 0: only SIGHUP. Default 5000. */
  reloadIntervalMs?: number;
  /** Reports reloads and failed reloads (never key material). */
  log?: (message: string) => void;
}

interface Material {
  identity: { certificate: Buffer; privateKey: Buffer } | null;
  ca: Buffer | null;
}

/** Why a PEM file is unusable, naming the file. */
export class TlsConfigError extends Error {
  override name = "TlsConfigError";
}

function readPem(file: string, what: string): Buffer {
  try {
    return Buffer.from(Deno.readFileSync(file));
  } catch (e) {
    throw new TlsConfigError(`${what} ${file}: cannot read (${(e as Error).name})`);
  }
}

/** Reads and cross-checks the files: the certificate parses, the key is its key, the CA parses. */
function loadMaterial(files: TlsFiles): Material {
  let identity: Material["identity"] = null;
  if (files.certFile !== undefined && files.keyFile !== undefined) {
    const certificate = readPem(files.certFile, "TLS certificate");
    const privateKey = readPem(files.keyFile, "TLS key");
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(certificate);
    } catch (e) {
      throw new TlsConfigError(
        `TLS certificate ${files.certFile}: not a PEM certificate (${(e as Error).message})`,
      );
    }
    let key;
    try {
      key = createPrivateKey(privateKey);
    } catch (e) {
      throw new TlsConfigError(`TLS key ${files.keyFile}: not a PEM private key (${(e as Error).message})`);
    }
    if (!cert.checkPrivateKey(key)) {
      throw new TlsConfigError(
        `TLS key ${files.keyFile} does not belong to the certificate ${files.certFile}`,
      );
    }
    identity = { certificate, privateKey };
  } else if ((files.certFile === undefined) !== (files.keyFile === undefined)) {
    throw new TlsConfigError("a TLS certificate needs its key and a key its certificate (set both)");
  }
  let ca: Buffer | null = null;
  if (files.caFile !== undefined) {
    ca = readPem(files.caFile, "TLS CA");
    try {
      new X509Certificate(ca);
    } catch (e) {
      throw new TlsConfigError(`TLS CA ${files.caFile}: not a PEM certificate (${(e as Error).message})`);
    }
  }
  return { identity, ca };
}

/**
 * A grpc-js CertificateProvider over PEM files that follows rotations and keeps the last good
 * material when a reload fails.
 */
export class ReloadingCertificateProvider implements CertificateProvider {
  readonly #source: Reloading<Material>;
  readonly #caListeners = new Set<CaListener>();
  readonly #identityListeners = new Set<IdentityListener>();

  private constructor(source: Reloading<Material>) {
    this.#source = source;
  }

  /** Loads the files (throwing TlsConfigError if they are unusable) and starts following them. */
  static open(files: TlsFiles, options: TlsReloadOptions = {}): ReloadingCertificateProvider {
    const paths = [files.certFile, files.keyFile, files.caFile].filter((f): f is string => f !== undefined);
    const log = options.log ?? ((m: string) => console.error(m));
    // The reload callback needs the provider, which needs the first load: filled in below.
    const made: { provider?: ReloadingCertificateProvider } = {};
    const source = followFiles({
      files: paths,
      load: () => loadMaterial(files),
      intervalMs: options.reloadIntervalMs,
      onReload: () => {
        log(`tls: reloaded ${paths.join(", ")}`);
        made.provider?.publish();
      },
      onError: (e) => log(`tls: reload failed, keeping the previous certificate: ${(e as Error).message}`),
    });
    made.provider = new ReloadingCertificateProvider(source);
    return made.provider;
  }

  /** The current (last good) material. */
  get material(): Readonly<Material> {
    return this.#source.current;
  }

  /** Successful reloads since open. */
  get reloads(): number {
    return this.#source.reloads;
  }

  /** Reloads now (SIGHUP does the same); true when new material was published. */
  reload(): boolean {
    return this.#source.reload();
  }

  close(): void {
    this.#source.close();
  }

  /** Sends the current material to every listener. */
  publish(): void {
    const { identity, ca } = this.#source.current;
    for (const l of this.#identityListeners) l(identity);
    for (const l of this.#caListeners) l(ca && { caCertificate: ca });
  }

  addCaCertificateListener(listener: CaListener): void {
    this.#caListeners.add(listener);
    const { ca } = this.#source.current;
    queueMicrotask(() => listener(ca && { caCertificate: ca }));
  }

  removeCaCertificateListener(listener: CaListener): void {
    this.#caListeners.delete(listener);
  }

  addIdentityCertificateListener(listener: IdentityListener): void {
    this.#identityListeners.add(listener);
    const { identity } = this.#source.current;
    queueMicrotask(() => listener(identity));
  }

  removeIdentityCertificateListener(listener: IdentityListener): void {
    this.#identityListeners.delete(listener);
  }
}

export interface ServerTls {
  credentials: grpc.ServerCredentials;
  provider: ReloadingCertificateProvider;
  /** True when clients must present a certificate signed by the client CA. */
  mutual: boolean;
  close(): void;
}

/**
 * Server credentials from a certificate and key, plus a client CA for mutual TLS (then a client
 * without a certificate from that CA is refused during the handshake).
 */
export function serverTls(
  files: { certFile: string; keyFile: string; clientCaFile?: string },
  options: TlsReloadOptions = {},
): ServerTls {
  const provider = ReloadingCertificateProvider.open(
    { certFile: files.certFile, keyFile: files.keyFile, caFile: files.clientCaFile },
    options,
  );
  const mutual = files.clientCaFile !== undefined;
  // grpc-js names this function's parameters (ca, identity) but passes them on as (identity, ca):
  // the first argument is the identity provider. One provider serves both roles here.
  const credentials = grpc.experimental.createCertificateProviderServerCredentials(
    provider,
    mutual ? provider : null,
    mutual,
  );
  return { credentials, provider, mutual, close: () => provider.close() };
}

export interface ClientTlsFiles {
  /** CA bundle that signed the server's certificate (unset: the system's roots). */
  caFile?: string;
  /** Client certificate and key, for servers that require mTLS. */
  certFile?: string;
  keyFile?: string;
  /** Name to verify in the server's certificate (and send as SNI); needed when dialling an IP. */
  serverName?: string;
}

export interface ClientTls {
  credentials: grpc.ChannelCredentials;
  /** Channel options the credentials need (the server-name override). */
  channelOptions: grpc.ChannelOptions;
  close(): void;
}

/** Channel credentials for TLS (and mTLS when a client certificate is given), following rotations. */
export function clientTls(files: ClientTlsFiles, options: TlsReloadOptions = {}): ClientTls {
  const channelOptions: grpc.ChannelOptions = files.serverName
    ? { "grpc.ssl_target_name_override": files.serverName, "grpc.default_authority": files.serverName }
    : {};
  if (files.caFile === undefined && files.certFile === undefined) {
    return { credentials: grpc.credentials.createSsl(), channelOptions, close() {} };
  }
  if (files.caFile === undefined) {
    throw new TlsConfigError("a client certificate needs the CA of the server (set the CA file too)");
  }
  const provider = ReloadingCertificateProvider.open(files, options);
  return {
    credentials: new RotatingChannelCredentials(provider),
    channelOptions,
    close: () => provider.close(),
  };
}

/**
 * Channel credentials that take the provider's current material on every new connection, so a
 * rotated CA or client certificate is used from the next reconnect on.
 *
 * Why not grpc-js' createCertificateProviderChannelCredentials: its connector removes its socket
 * `error` listener once the TLS handshake completes, and under TLS 1.3 a server that refuses the
 * client certificate sends its alert after that point; in Deno the alert then surfaces as an
 * uncaught error and kills the client process (seen here with a client lacking a certificate).
 * createSsl's connector keeps a listener for the socket's lifetime, so each connection is made by
 * a createSsl connector built from the current material.
 */
class RotatingChannelCredentials extends grpc.ChannelCredentials {
  readonly #provider: ReloadingCertificateProvider;
  #built: { reloads: number; credentials: grpc.ChannelCredentials } | undefined;

  constructor(provider: ReloadingCertificateProvider) {
    super();
    this.#provider = provider;
  }

  #current(): grpc.ChannelCredentials {
    const reloads = this.#provider.reloads;
    if (this.#built?.reloads !== reloads) {
      const { ca, identity } = this.#provider.material;
      this.#built = {
        reloads,
        credentials: grpc.credentials.createSsl(
          ca,
          identity?.privateKey ?? null,
          identity?.certificate ?? null,
        ),
      };
    }
    return this.#built.credentials;
  }

  override _isSecure(): boolean {
    return true;
  }

  override _equals(other: grpc.ChannelCredentials): boolean {
    return other === this;
  }

  override _createSecureConnector(
    target: grpc.experimental.GrpcUri,
    options: grpc.ChannelOptions,
    callCredentials?: grpc.CallCredentials,
  ): grpc.experimental.SecureConnector {
    let inner: grpc.experimental.SecureConnector | undefined;
    return {
      connect: (socket) => {
        inner?.destroy();
        inner = this.#current()._createSecureConnector(target, options, callCredentials);
        return inner.connect(socket);
      },
      waitForReady: () => Promise.resolve(),
      getCallCredentials: () => callCredentials ?? grpc.credentials.createEmpty(),
      destroy: () => inner?.destroy(),
    };
  }
}

/** True for targets whose host is an IP literal (Deno cannot use it as the TLS server name). */
export function targetIsIpAddress(target: string): boolean {
  const host = target.replace(/^(dns|ipv4|ipv6):(\/\/[^/]*\/)?/, "").replace(/:\d+$/, "");
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(host) || host.startsWith("[") || host.includes(":");
}
