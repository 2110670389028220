/**
 * Bearer-token authentication and role-based authorization of gRPC calls (SECURITY.md).
 *
 * A token table (YAML or JSON, usually a Kubernetes Secret mounted as a file) lists tokens, each
 * with a role; a call carries `authorization: Bearer <token>`. Roles are ordered: `read` < `train`
 * < `admin` (a role may call everything the roles below it may). Each method needs a role
 * (access.ts); health and reflection are public so probes and grpcurl keep working.
 *
 *   tokens:
 *     - name: trainer-run-42     # shown in denials and logs instead of the token
 *       role: train
 *       token: "s3cret..."       # or  sha256: "<hex digest of the token>"
 *
 * Missing or malformed credentials -> UNAUTHENTICATED; a token that is not in the table, or whose
 * role is below the method's -> PERMISSION_DENIED (the contract the reward service's admin token
 * has had since issue 6). Messages name the method, the role needed and the token's name, never a
 * token. Comparisons are constant-time over SHA-256 digests.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { parse as parseYaml } from "yaml";
import { Buffer } from "node:buffer";
import { type CallStatus, Code } from "./status.ts";
import type { CallMiddleware } from "./types.ts";

export const ROLES = ["read", "train", "admin"] as const;
export type Role = (typeof ROLES)[number];
/** What a method needs: a role, or nothing (`public`). */
export type Access = Role | "public";

export interface TokenEntry {
  /** A label for logs and messages (never the token). */
  name: string;
  role: Role;
  /** SHA-256 of the token. */
  digest: Uint8Array;
}

export class TokenTableError extends Error {
  override name = "TokenTableError";
}

function sha256(text: string): Uint8Array {
  return new Uint8Array(createHash("sha256").update(text, "utf8").digest());
}

/** The tokens a server accepts. */
export class TokenTable {
  readonly entries: readonly TokenEntry[];

  constructor(entries: readonly TokenEntry[]) {
    this.entries = entries;
  }

  get size(): number {
    return this.entries.length;
  }

  /** The entry whose token is `token`; every entry is compared (constant time in the match). */
  find(token: string): TokenEntry | undefined {
    const digest = sha256(token);
    let found: TokenEntry | undefined;
    for (const entry of this.entries) {
      if (timingSafeEqual(entry.digest, digest) && found === undefined) found = entry;
    }
    return found;
  }

  /** A table plus more entries (e.g. the reward service's --admin-token). */
  with(extra: readonly TokenEntry[]): TokenTable {
    return new TokenTable([...this.entries, ...extra]);
  }

  /** One entry from a plain token. */
  static entry(name: string, role: Role, token: string): TokenEntry {
    return { name, role, digest: sha256(token) };
  }

  /**
   * Parses a token table (YAML or JSON; `source` names the file in messages). Throws
   * TokenTableError naming the entry and field; the error never contains a token.
   */
  static parse(text: string, source = "token table"): TokenTable {
    let doc: unknown;
    try {
      doc = parseYaml(text);
    } catch (e) {
      // The YAML error can quote the line, which may hold a token: report its position only.
      const pos = (e as { linePos?: { line: number }[] }).linePos?.[0]?.line;
      throw new TokenTableError(`${source}: not valid YAML${pos ? ` (line ${pos})` : ""}`);
    }
    const list = (doc as { tokens?: unknown })?.tokens;
    if (!Array.isArray(list)) throw new TokenTableError(`${source}: expected a "tokens:" list`);
    const names = new Set<string>();
    const entries = list.map((raw, i): TokenEntry => {
      const where = `${source}: tokens[${i}]`;
      if (typeof raw !== "object" || raw === null) throw new TokenTableError(`${where}: not a mapping`);
      const item = raw as Record<string, unknown>;
      const name = item.name;
      if (typeof name !== "string" || !/^[\w.@-]{1,64}$/.test(name)) {
        throw new TokenTableError(`${where}.name: 1-64 letters, digits, or . _ - @`);
      }
      if (names.has(name)) throw new TokenTableError(`${where}.name: "${name}" appears twice`);
      names.add(name);
      if (!ROLES.includes(item.role as Role)) {
        throw new TokenTableError(`${where}.role: one of ${ROLES.join(", ")}`);
      }
      const role = item.role as Role;
      if (typeof item.token === "string" && item.sha256 === undefined) {
        // Short tokens can be guessed; 16 characters of a random alphabet is the floor.
        if (item.token.length < 16) throw new TokenTableError(`${where}.token: shorter than 16 characters`);
        return TokenTable.entry(name, role, item.token);
      }
      if (
        typeof item.sha256 === "string" && item.token === undefined && /^[0-9a-f]{64}$/i.test(item.sha256)
      ) {
        return { name, role, digest: new Uint8Array(Buffer.from(item.sha256, "hex")) };
      }
      throw new TokenTableError(`${where}: exactly one of token (text) or sha256 (64 hex digits)`);
    });
    return new TokenTable(entries);
  }
}

/** True when `have` may call a method that needs `need`. */
export function roleAllows(have: Role, need: Role): boolean {
  return ROLES.indexOf(have) >= ROLES.indexOf(need);
}

export interface AuthOptions {
  /** The current token table (read on every call, so a reload takes effect at once). */
  tokens: () => TokenTable;
  /** Role each method needs, by service and method name (access.ts). */
  access: (service: string, method: string) => Access | undefined;
  /** Let calls that need only `read` through without a token. */
  anonymousRead?: boolean;
}

/** The outcome of checking one call: OK with the caller's name, or a status to end it with. */
export type AuthDecision = { ok: true; caller: string } | { ok: false; status: CallStatus };

const deny = (code: number, details: string): AuthDecision => ({ ok: false, status: { code, details } });

/** Decides one call from its `authorization` header value. */
export function authorize(
  options: AuthOptions,
  service: string,
  method: string,
  authorization: string | undefined,
): AuthDecision {
  const need = options.access(service, method);
  if (need === undefined) {
    // Fail closed: a method nobody classified is not callable.
    return deny(Code.PERMISSION_DENIED, `${method}: no access rule for this method`);
  }
  if (need === "public") return { ok: true, caller: "anonymous" };
  const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? "");
  if (!match) {
    if (need === "read" && options.anonymousRead) return { ok: true, caller: "anonymous" };
    return deny(
      Code.UNAUTHENTICATED,
      `${method} needs a token with role ${need}: send metadata "authorization: Bearer <token>"`,
    );
  }
  const entry = options.tokens().find(match[1]);
  if (!entry) {
    if (need === "read" && options.anonymousRead) return { ok: true, caller: "anonymous" };
    return deny(Code.PERMISSION_DENIED, `${method}: the bearer token is not valid`);
  }
  if (!roleAllows(entry.role, need)) {
    return deny(
      Code.PERMISSION_DENIED,
      `${method} needs role ${need}; token "${entry.name}" has role ${entry.role}`,
    );
  }
  return { ok: true, caller: entry.name };
}

/** Server middleware enforcing `options` on every call before its handler runs. */
export function authMiddleware(options: AuthOptions): CallMiddleware {
  return (call, next) => {
    const header = call.metadata.get("authorization")[0];
    const decision = authorize(
      options,
      call.service,
      call.method,
      typeof header === "string" ? header : undefined,
    );
    return decision.ok ? next() : Promise.resolve(decision.status);
  };
}
