/**
 * What a client (the trainer, the demo, the health probe) needs to call a protected service: TLS
 * credentials (a CA, and a client certificate for mTLS) and a bearer token, from environment
 * variables so one Secret mounted into a pod configures every client in it (SECURITY.md).
 *
 *   RDPO_CLIENT_TLS=1              TLS with the system's roots (implied by the CA or cert below)
 *   RDPO_CLIENT_TLS_CA=PATH        CA bundle that signed the servers' certificates
 *   RDPO_CLIENT_TLS_CERT=PATH      client certificate (mutual TLS), with RDPO_CLIENT_TLS_KEY=PATH
 *   RDPO_CLIENT_TLS_SERVER_NAME=N  name to verify in the server's certificate (when dialling an IP)
 *   RDPO_CLIENT_TOKEN_FILE=PATH    file holding one bearer token (re-read when it changes)
 *   RDPO_CLIENT_TOKEN=TOKEN        the token itself (the file is preferred: env leaks into dumps)
 *
 * Each variable may be given per target, e.g. RDPO_POLICY_CLIENT_TOKEN_FILE for the trainer's
 * policy client, which wins over the general one.
 */
import type * as grpc from "@grpc/grpc-js";
import type { ClientHook, ClientOptions } from "./client.ts";
import { followFiles, type Reloading } from "./reload.ts";
import { type ClientTls, clientTls, targetIsIpAddress, TlsConfigError } from "./tls.ts";

export interface ClientSecurityConfig {
  tls?: boolean;
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  serverName?: string;
  tokenFile?: string;
  token?: string;
  /** Poll period for changed files (ms); 0: only SIGHUP. Default 5000. */
  reloadIntervalMs?: number;
}

/** Reads the RDPO_[TARGET_]CLIENT_* variables (target e.g. "POLICY"). */
export function clientSecurityFromEnv(
  target?: string,
  env: (name: string) => string | undefined = (name) => Deno.env.get(name),
): ClientSecurityConfig {
  const get = (key: string) =>
    (target ? env(`RDPO_${target}_CLIENT_${key}`) : undefined) ?? env(`RDPO_CLIENT_${key}`);
  const tls = get("TLS");
  return {
    tls: tls === undefined ? undefined : ["1", "true", "yes", "on"].includes(tls.toLowerCase()),
    caFile: get("TLS_CA"),
    certFile: get("TLS_CERT"),
    keyFile: get("TLS_KEY"),
    serverName: get("TLS_SERVER_NAME"),
    tokenFile: get("TOKEN_FILE"),
    token: get("TOKEN"),
  };
}

/** Client options that carry the configured credentials; close() stops following the files. */
export interface ClientSecurity {
  /** Spread into createClient's options (credentials, channel options, the token hook). */
  options: Pick<ClientOptions, "credentials" | "grpcOptions" | "onCall">;
  /** "TLS", "mutual TLS" or "plaintext", plus whether a token is sent. */
  summary: string;
  close(): void;
}

function readToken(file: string): string {
  let text: string;
  try {
    text = Deno.readTextFileSync(file);
  } catch (e) {
    throw new TlsConfigError(`token file ${file}: cannot read (${(e as Error).name})`);
  }
  const token = text.trim();
  if (!token || /\s/.test(token)) {
    throw new TlsConfigError(`token file ${file}: expected one token on one line`);
  }
  return token;
}

/**
 * Opens `config` for clients of `target` (the address, to refuse an IP without a server name
 * under TLS: Deno cannot verify one). Throws TlsConfigError naming the file or variable.
 */
export function openClientSecurity(config: ClientSecurityConfig, target?: string): ClientSecurity {
  const useTls = config.tls ?? (config.caFile !== undefined || config.certFile !== undefined);
  if (useTls && target !== undefined && targetIsIpAddress(target) && !config.serverName) {
    throw new TlsConfigError(
      `${target}: TLS to an IP address needs RDPO_CLIENT_TLS_SERVER_NAME (a name in the server's certificate)`,
    );
  }
  let tls: ClientTls | undefined;
  let tokenFile: Reloading<string> | undefined;
  try {
    if (useTls) {
      tls = clientTls(config, { reloadIntervalMs: config.reloadIntervalMs });
    }
    if (config.tokenFile !== undefined) {
      const file = config.tokenFile;
      tokenFile = followFiles({
        files: [file],
        load: () => readToken(file),
        intervalMs: config.reloadIntervalMs,
        onError: (e) => console.error(`client: keeping the previous token: ${(e as Error).message}`),
      });
    }
  } catch (e) {
    tls?.close();
    throw e;
  }
  const fixed = config.token?.trim();
  const token = tokenFile ? () => tokenFile.current : fixed ? () => fixed : undefined;
  const hook: ClientHook | undefined = token &&
    ((call) => {
      call.metadata.set("authorization", `Bearer ${token()}`);
    });
  const grpcOptions: grpc.ChannelOptions = { ...(tls?.channelOptions ?? {}) };
  return {
    options: {
      ...(tls ? { credentials: tls.credentials, grpcOptions } : {}),
      ...(hook ? { onCall: [hook] } : {}),
    },
    summary: `${tls ? (config.certFile ? "mutual TLS" : "TLS") : "plaintext"}${
      token ? ", bearer token" : ""
    }`,
    close() {
      tls?.close();
      tokenFile?.close();
    },
  };
}

/** Merges security options into other client options (hooks and channel options are combined). */
export function withSecurity(options: ClientOptions, security: ClientSecurity | undefined): ClientOptions {
  if (!security) return options;
  const s = security.options;
  return {
    ...options,
    ...(s.credentials ? { credentials: s.credentials } : {}),
    grpcOptions: { ...(options.grpcOptions ?? {}), ...(s.grpcOptions ?? {}) },
    onCall: [...(s.onCall ?? []), ...(options.onCall ?? [])],
  };
}
