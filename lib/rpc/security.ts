/**
 * A service's transport security and call authorization from its flags (SECURITY.md):
 * --tls-cert/--tls-key (TLS), --tls-client-ca (mutual TLS), --auth-tokens-file (bearer tokens with
 * roles, auth.ts), --insecure. Certificates and the token table are reloaded on SIGHUP and on
 * change (reload.ts).
 *
 * A server bound to an address other than loopback with neither TLS nor tokens would let anyone
 * on the network train, load or overwrite models, so it refuses to start unless --insecure is
 * given, and says why.
 */
import type * as grpc from "@grpc/grpc-js";
import { ServerCredentials } from "@grpc/grpc-js";
import { accessOf } from "./access.ts";
import { authMiddleware, type TokenEntry, TokenTable } from "./auth.ts";
import { FlagError, type FlagSpecs } from "./flags.ts";
import { followFiles, type Reloading } from "./reload.ts";
import { type ServerTls, serverTls } from "./tls.ts";
import type { CallMiddleware } from "./types.ts";

/** The security flags of every service (added to lib/rpc/main.ts' commonFlags). */
export function securityFlags(prefix: string) {
  return {
    tlsCert: {
      type: "string",
      env: [`${prefix}_TLS_CERT`, "RDPO_TLS_CERT"],
      description: "PEM certificate chain of this server; with --tls-key: serve TLS",
    },
    tlsKey: {
      type: "string",
      env: [`${prefix}_TLS_KEY`, "RDPO_TLS_KEY"],
      description: "PEM private key of --tls-cert",
    },
    tlsClientCa: {
      type: "string",
      env: [`${prefix}_TLS_CLIENT_CA`, "RDPO_TLS_CLIENT_CA"],
      description: "PEM CA bundle; set: mutual TLS, clients without a certificate it signed are refused",
    },
    tlsReloadMs: {
      type: "int",
      env: [`${prefix}_TLS_RELOAD_MS`, "RDPO_TLS_RELOAD_MS"],
      default: 5000,
      min: 0,
      description: "how often certificate and token files are checked for changes (0: only on SIGHUP)",
    },
    authTokensFile: {
      type: "string",
      env: [`${prefix}_AUTH_TOKENS_FILE`, "RDPO_AUTH_TOKENS_FILE"],
      description:
        "YAML token table (tokens: [{name, role: read|train|admin, token|sha256}]); set: calls need a token",
    },
    authAnonymousRead: {
      type: "bool",
      env: [`${prefix}_AUTH_ANONYMOUS_READ`, "RDPO_AUTH_ANONYMOUS_READ"],
      description: "with --auth-tokens-file: let calls that only read through without a token",
    },
    insecure: {
      type: "bool",
      env: [`${prefix}_INSECURE`, "RDPO_INSECURE"],
      description:
        "allow a non-loopback --host with neither TLS nor tokens (anyone who can reach it may call it)",
    },
  } as const satisfies FlagSpecs;
}

/** The parsed values securityFlags() declares. */
export interface SecurityFlagValues {
  tlsCert?: string;
  tlsKey?: string;
  tlsClientCa?: string;
  tlsReloadMs: number;
  authTokensFile?: string;
  authAnonymousRead: boolean;
  insecure: boolean;
}

export interface ServerSecurity {
  credentials: grpc.ServerCredentials;
  /** Authorization middleware; undefined when no tokens are configured (every call allowed). */
  middleware?: CallMiddleware;
  tls?: ServerTls;
  tokens?: Reloading<TokenTable>;
  /** One line for the log: what protects this server (never a secret). */
  summary: string;
  close(): void;
}

/** True for addresses only this machine can reach. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "").toLowerCase();
  return h === "localhost" || h === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

/**
 * The off-loopback guard: why a server with `flags` must not serve on `host` (a non-loopback
 * address with neither TLS nor tokens, and no --insecure), or undefined when it may. Checks the
 * flags only, not the files they name. `extraTokens`: tokens given besides the file (--admin-token).
 */
export function unprotectedBindProblem(
  flags: Pick<SecurityFlagValues, "tlsCert" | "authTokensFile" | "insecure">,
  host: string,
  extraTokens = 0,
): string | undefined {
  const hasTokens = flags.authTokensFile !== undefined || extraTokens > 0;
  if (isLoopback(host) || flags.tlsCert !== undefined || hasTokens || flags.insecure) return undefined;
  return `--host ${host}: refusing to serve a non-loopback address with neither TLS (--tls-cert, --tls-key) ` +
    `nor tokens (--auth-tokens-file): anyone who can reach it could call every RPC. ` +
    `Configure one of them, or pass --insecure to accept that.`;
}

/**
 * Builds the credentials and middleware for a server on `host`. `extraTokens` are accepted besides
 * the token file's (the reward service's --admin-token). Throws FlagError for unusable settings.
 */
export function openServerSecurity(
  flags: SecurityFlagValues,
  host: string,
  options: { extraTokens?: readonly TokenEntry[]; log?: (message: string) => void } = {},
): ServerSecurity {
  const log = options.log ?? ((m: string) => console.error(m));
  if ((flags.tlsCert === undefined) !== (flags.tlsKey === undefined)) {
    throw new FlagError("--tls-cert and --tls-key: set both (or neither)");
  }
  if (flags.tlsClientCa !== undefined && flags.tlsCert === undefined) {
    throw new FlagError("--tls-client-ca: mutual TLS needs --tls-cert and --tls-key too");
  }
  const extra = options.extraTokens ?? [];
  const refused = unprotectedBindProblem(flags, host, extra.length);
  if (refused !== undefined) throw new FlagError(refused);

  let tls: ServerTls | undefined;
  let tokens: Reloading<TokenTable> | undefined;
  try {
    if (flags.tlsCert !== undefined && flags.tlsKey !== undefined) {
      tls = serverTls(
        { certFile: flags.tlsCert, keyFile: flags.tlsKey, clientCaFile: flags.tlsClientCa },
        { reloadIntervalMs: flags.tlsReloadMs, log },
      );
    }
    const file = flags.authTokensFile;
    if (file !== undefined) {
      tokens = followFiles({
        files: [file],
        load: () => TokenTable.parse(readTokenFile(file), file).with(extra),
        intervalMs: flags.tlsReloadMs,
        onReload: (t) => log(`auth: reloaded ${file} (${t.size} tokens)`),
        onError: (e) => log(`auth: reload failed, keeping the previous tokens: ${(e as Error).message}`),
      });
    }
  } catch (e) {
    tls?.close();
    throw e instanceof FlagError ? e : new FlagError((e as Error).message);
  }
  const table = tokens ?? (extra.length > 0 ? { current: new TokenTable(extra) } : undefined);
  const middleware = table &&
    authMiddleware({
      tokens: () => table.current,
      access: accessOf,
      // Without a token file (only the legacy --admin-token) reads stay open, as they always were.
      anonymousRead: tokens === undefined || flags.authAnonymousRead,
    });
  const parts = [
    tls ? (tls.mutual ? "mutual TLS" : "TLS") : "plaintext",
    table
      ? `${table.current.size} token(s)${
        tokens === undefined || flags.authAnonymousRead ? ", anonymous reads" : ""
      }`
      : "no tokens",
  ];
  if (!tls && table && !isLoopback(host)) parts.push("WARNING: tokens travel unencrypted");
  if (!tls && !table && !isLoopback(host)) parts.push("--insecure: every RPC is open");
  return {
    credentials: tls?.credentials ?? ServerCredentials.createInsecure(),
    middleware,
    tls,
    tokens,
    summary: parts.join(", "),
    close() {
      tls?.close();
      tokens?.close();
    },
  };
}

function readTokenFile(file: string): string {
  try {
    return Deno.readTextFileSync(file);
  } catch (e) {
    throw new FlagError(`--auth-tokens-file ${file}: cannot read (${(e as Error).name})`);
  }
}
