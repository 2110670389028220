/**
 * Guard against the Deno 2.9.6 node:http2 crash of denoland/deno#36788 (exit 134, nghttp2
 * assertion `stream->closed_next == NULL` in find_stream_on_goaway_func, or exit 139, SIGSEGV).
 *
 * The trigger (tools/h2_storm.ts reproduces it; README "HTTP/2 close storms"): the side that
 * RECEIVES a GOAWAY crashes. A grpc-js client that closes its channel sends GOAWAY(NO_ERROR); on
 * the receiving side nghttp2 calls Deno's frame callback from inside nghttp2_session_mem_recv, and
 * the node:http2 polyfill's onGoawayData runs `session.close()` (NO_ERROR) or `session.destroy()`
 * (any other code) synchronously there. With no stream left open that tears the session down at
 * once, and when the callback returns nghttp2 goes on in session_close_stream_on_goaway, walking the
 * stream map of the session just torn down. Node defers that teardown in C++ (Http2Scope); Deno
 * does not. Many peers closing at once (32 clients) hit it in most storms; one at a time rarely.
 *
 * The guard defers close() and destroy() of every HTTP/2 session, server and client, to a
 * macrotask, i.e. until nghttp2 has returned. (A microtask is not enough: V8 runs microtasks when
 * the callback returns to Rust, still inside nghttp2.) It wraps node:http2's createServer,
 * createSecureServer and connect, which is how grpc-js makes every session, so TLS servers and
 * channels made anywhere in the process are covered. Installed once by lib/rpc/server.ts and
 * client.ts; idempotent.
 */
import { createRequire } from "node:module";
import type { EventEmitter } from "node:events";

const GUARDED = Symbol.for("rdpo.h2_guard");

interface Teardown {
  close(callback?: () => void): void;
  destroy(error?: Error, code?: number): void;
  [GUARDED]?: true;
}

/** Makes `session.close()` and `session.destroy()` run on the next macrotask. */
export function deferSessionTeardown(session: Teardown): void {
  if (session[GUARDED]) return;
  session[GUARDED] = true;
  const close = session.close.bind(session);
  const destroy = session.destroy.bind(session);
  session.close = (callback) => void setTimeout(() => close(callback), 0);
  session.destroy = (error, code) => void setTimeout(() => destroy(error, code), 0);
}

type Http2Module = Record<"createServer" | "createSecureServer" | "connect", (...args: unknown[]) => unknown>;

let installed = false;

/**
 * Wraps node:http2 (the instance grpc-js requires) so every session it makes is guarded.
 * RDPO_HTTP2_GUARD=off leaves it out (only to reproduce the crash: `deno task storm --no-guard`).
 */
export function installHttp2Guard(): void {
  if (installed || Deno.env.get("RDPO_HTTP2_GUARD") === "off") return;
  installed = true;
  const http2 = createRequire(import.meta.url)("node:http2") as Http2Module;
  for (const name of ["createServer", "createSecureServer"] as const) {
    const original = http2[name];
    http2[name] = (...args: unknown[]) => {
      const server = original(...args) as EventEmitter;
      server.on("session", (session: Teardown) => deferSessionTeardown(session));
      return server;
    };
  }
  const connect = http2.connect;
  http2.connect = (...args: unknown[]) => {
    const session = connect(...args) as Teardown;
    deferSessionTeardown(session);
    return session;
  };
}

/** Whether the guard is installed (tools/h2_storm.ts reports it). */
export function http2GuardInstalled(): boolean {
  return installed;
}
