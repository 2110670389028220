/**
 * Per-message hop timestamps of Session calls (issue 21: where a message's ~2 ms of wire time
 * goes), for bench/session_hop_probe.ts. Off unless RDPO_HOP_TRACE names a file prefix when this
 * module loads; off, `hops` is undefined and every call site is one `hops?.` check.
 *
 * On, each process keeps its marks in memory and writes them, once, to `<prefix>.<pid>.jsonl`
 * when it exits (the `unload` event, which Deno.exit dispatches), so no file I/O lands between a
 * message's hops. Times are `performance.timeOrigin + performance.now()` in ms, comparable across
 * processes on one machine.
 *
 * Marks name a carrier (the Session method path) and a call id. The raw HTTP/2 DATA events
 * (`h2.write` when grpc-js hands a framed message to the node:http2 stream, `h2.data` when a DATA
 * chunk reaches it) carry no call id; they are recorded per carrier path and matched to messages
 * by time in the probe (the step's calls on one carrier do not overlap).
 */
import { createRequire } from "node:module";
import type { EventEmitter } from "node:events";

export interface HopMark {
  /** Carrier path, e.g. /rdpo.v1.PolicyService/Session. */
  path: string;
  /** Session call id; 0 for the raw HTTP/2 events. */
  id: number;
  hop: string;
  /** ms, performance.timeOrigin + performance.now(). */
  t: number;
  /** Optional detail: the inner method, a byte count. */
  note?: string | number;
}

export class HopTrace {
  readonly marks: HopMark[] = [];
  readonly #origin = performance.timeOrigin;

  constructor(readonly file: string) {}

  /** `at`: a performance.now() taken earlier (default now). */
  mark(path: string, id: bigint | number, hop: string, note?: string | number, at = performance.now()): void {
    this.marks.push({ path, id: Number(id), hop, t: this.#origin + at, note });
  }

  flush(): void {
    if (this.marks.length === 0) return;
    Deno.writeTextFileSync(this.file, this.marks.map((m) => JSON.stringify(m)).join("\n") + "\n", {
      append: true,
    });
    this.marks.length = 0;
  }
}

function open(): HopTrace | undefined {
  let prefix: string | undefined;
  try {
    prefix = Deno.env.get("RDPO_HOP_TRACE");
  } catch {
    return undefined; // no env permission: tracing stays off
  }
  if (!prefix) return undefined;
  const trace = new HopTrace(`${prefix}.${Deno.pid}.jsonl`);
  globalThis.addEventListener("unload", () => trace.flush());
  installHttp2Marks(trace);
  return trace;
}

type Http2Stream = EventEmitter & { write: (...args: unknown[]) => boolean };

function markStream(trace: HopTrace, stream: Http2Stream, path: string): void {
  if (!path.endsWith("/Session")) return;
  const write = stream.write.bind(stream);
  stream.write = (...args: unknown[]) => {
    const chunk = args[0] as { length?: number } | undefined;
    trace.mark(path, 0, "h2.write", chunk?.length ?? 0);
    return write(...args);
  };
  stream.prependListener("data", (chunk: { length: number }) => trace.mark(path, 0, "h2.data", chunk.length));
}

/** Wraps node:http2 (the instance grpc-js requires, as h2_guard.ts does) to mark Session streams. */
function installHttp2Marks(trace: HopTrace): void {
  const http2 = createRequire(import.meta.url)("node:http2") as Record<string, (...a: unknown[]) => unknown>;
  const createServer = http2.createServer;
  http2.createServer = (...args: unknown[]) => {
    const server = createServer(...args) as EventEmitter;
    // Registered before grpc-js' own 'stream' listener, so the marks come first.
    server.on("stream", (stream: Http2Stream, headers: Record<string, string>) => {
      markStream(trace, stream, headers[":path"] ?? "");
    });
    return server;
  };
  const connect = http2.connect;
  http2.connect = (...args: unknown[]) => {
    const session = connect(...args) as {
      request: (headers: Record<string, string>, o?: unknown) => unknown;
    };
    const request = session.request.bind(session);
    session.request = (headers, o) => {
      const stream = request(headers, o) as Http2Stream;
      markStream(trace, stream, headers[":path"] ?? "");
      return stream;
    };
    return session;
  };
}

/** The process's hop trace, or undefined when RDPO_HOP_TRACE is unset (the normal case). */
export const hops: HopTrace | undefined = open();
