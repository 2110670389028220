/**
 * The supervised gRPC front (its own process, started by supervisor.ts): serves the public address
 * and relays every call, byte for byte, to the service process over one long-lived loopback
 * channel. Why: Deno 2.9.6's node:http2 can abort the whole process (nghttp2 assertion
 * `stream->closed_next == NULL` in find_stream_on_goaway_func, or SIGSEGV; denoland/deno#36788)
 * when many peers send GOAWAY and close at once. Peers are outside our control, so the process
 * that talks HTTP/2 to them holds nothing worth keeping: if it dies, the supervisor starts another
 * on the same port while the service process keeps its models, adapters and in-flight accounting.
 * The service process only ever sees this one peer, which never closes its channel (no GOAWAY).
 *
 *   deno run -A lib/rpc/transport/front.ts --listen HOST:PORT --upstream 127.0.0.1:PORT
 *     --max-message-bytes N --methods '[{"path":"/pkg.S/M","requestStream":false,"responseStream":false}]'
 *
 * On the command convention (lib/cli/command.ts: `--help`; a bad or missing flag, or --methods that
 * is not a method list, is one line and exit 2) but internal: tools/commands.ts lists it under
 * INTERNAL, not as a user command. Prints its settings line on stderr (the supervisor only keeps it)
 * and `listening on HOST:PORT` on stdout once bound. Decoding, validation, status codes and limits
 * all stay in the service process: this relay does not parse messages, so it cannot disagree with
 * them.
 */
import * as grpc from "@grpc/grpc-js";
import type { Buffer } from "node:buffer";
import { FlagError, type FlagSpecs } from "../flags.ts";
import { type CommandSpec, runCommand } from "../../cli/command.ts";
import { type RelayMethod, relayOptions, upstreamChannelOptions } from "./relay_options.ts";

export const FRONT_FLAGS = {
  listen: { type: "string", required: true, description: "public HOST:PORT to bind" },
  upstream: { type: "string", required: true, description: "the service process' loopback HOST:PORT" },
  maxMessageBytes: {
    type: "int",
    default: 64 * 1024 * 1024,
    min: 1024,
    description: "largest message relayed either way (bytes)",
  },
  methods: {
    type: "string",
    required: true,
    description: "JSON list of {path, requestStream, responseStream}",
  },
} as const satisfies FlagSpecs;

const raw = (b: Buffer) => b;

type AnyCall =
  | grpc.ServerUnaryCall<Buffer, Buffer>
  | grpc.ServerReadableStream<Buffer, Buffer>
  | grpc.ServerWritableStream<Buffer, Buffer>
  | grpc.ServerDuplexStream<Buffer, Buffer>;

function callOptions(call: AnyCall): grpc.CallOptions {
  const deadline = call.getDeadline();
  return Number.isFinite(deadline instanceof Date ? deadline.getTime() : deadline) ? { deadline } : {};
}

/** Status object a grpc-js server call ends with, from the upstream's status. */
function asError(status: grpc.StatusObject): grpc.ServerErrorResponse {
  return Object.assign(new Error(status.details), {
    code: status.code,
    details: status.details,
    metadata: status.metadata,
  });
}

function relay(upstream: grpc.Client, m: RelayMethod): grpc.UntypedHandleCall {
  if (!m.requestStream && !m.responseStream) {
    return (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
      let response: Buffer | undefined;
      const up = upstream.makeUnaryRequest(
        m.path,
        raw,
        raw,
        call.request,
        call.metadata.clone(),
        callOptions(call),
        (_e, r) => {
          response = r;
        },
      );
      up.on("metadata", (md) => call.sendMetadata(md));
      up.on(
        "status",
        (s) => s.code === grpc.status.OK ? callback(null, response, s.metadata) : callback(asError(s)),
      );
      call.on("cancelled", () => up.cancel());
    };
  }
  if (m.requestStream && !m.responseStream) {
    return (call: grpc.ServerReadableStream<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
      let response: Buffer | undefined;
      const up = upstream.makeClientStreamRequest(
        m.path,
        raw,
        raw,
        call.metadata.clone(),
        callOptions(call),
        (_e, r) => {
          response = r;
        },
      );
      up.on("metadata", (md) => call.sendMetadata(md));
      up.on(
        "status",
        (s) => s.code === grpc.status.OK ? callback(null, response, s.metadata) : callback(asError(s)),
      );
      call.on("data", (b: Buffer) => up.write(b));
      call.on("end", () => up.end());
      call.on("cancelled", () => up.cancel());
    };
  }
  const endWith = (call: grpc.ServerWritableStream<Buffer, Buffer>, s: grpc.StatusObject) => {
    if (s.code === grpc.status.OK) call.end(s.metadata);
    else call.emit("error", asError(s));
  };
  if (!m.requestStream) {
    return (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
      const up = upstream.makeServerStreamRequest(
        m.path,
        raw,
        raw,
        call.request,
        call.metadata.clone(),
        callOptions(call),
      );
      up.on("metadata", (md) => call.sendMetadata(md));
      up.on("data", (b: Buffer) => call.write(b));
      up.on("error", () => {/* the status event carries it */});
      up.on("status", (s: grpc.StatusObject) => endWith(call, s));
      call.on("cancelled", () => up.cancel());
    };
  }
  return (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
    const up = upstream.makeBidiStreamRequest(m.path, raw, raw, call.metadata.clone(), callOptions(call));
    up.on("metadata", (md) => call.sendMetadata(md));
    up.on("data", (b: Buffer) => call.write(b));
    up.on("error", () => {/* the status event carries it */});
    up.on("status", (s: grpc.StatusObject) => endWith(call as never, s));
    call.on("data", (b: Buffer) => up.write(b));
    call.on("end", () => up.end());
    call.on("cancelled", () => up.cancel());
  };
}

const KIND = (m: RelayMethod) =>
  m.requestStream
    ? (m.responseStream ? "bidi" : "clientStream")
    : m.responseStream
    ? "serverStream"
    : "unary";

/** `--methods`: a JSON list of RelayMethod; anything else is the caller's to fix (exit 2, one line). */
export function parseMethods(text: string): RelayMethod[] {
  let methods: unknown;
  try {
    methods = JSON.parse(text);
  } catch (e) {
    throw new FlagError(`--methods: not JSON (${(e as Error).message})`);
  }
  const ok = (m: unknown) =>
    typeof m === "object" && m !== null && typeof (m as RelayMethod).path === "string" &&
    typeof (m as RelayMethod).requestStream === "boolean" &&
    typeof (m as RelayMethod).responseStream === "boolean";
  if (!Array.isArray(methods) || !methods.every(ok)) {
    throw new FlagError("--methods: expected a JSON list of {path, requestStream, responseStream}");
  }
  return methods as RelayMethod[];
}

/**
 * Internal: started only by supervisor.ts (not a user command, so not in tools/commands.ts COMMANDS,
 * SCRIPTS or the README; INTERNAL there keeps it under the --help test).
 */
export const FRONT_COMMAND: CommandSpec<typeof FRONT_FLAGS> = {
  name: "lib/rpc/transport/front.ts",
  summary:
    "internal: the supervised transport's gRPC front, relaying to a service (started by supervisor.ts)",
  flags: FRONT_FLAGS,
  examples: [
    "deno run -A lib/rpc/transport/front.ts --listen 0.0.0.0:50051 --upstream 127.0.0.1:40001 " +
    `--methods '[{"path":"/grpc.health.v1.Health/Check","requestStream":false,"responseStream":false}]'`,
  ],
  run(values) {
    const methods = parseMethods(values.methods);
    const upstream = new grpc.Client(
      values.upstream,
      grpc.credentials.createInsecure(),
      upstreamChannelOptions(values.maxMessageBytes),
    );
    const server = new grpc.Server(relayOptions(values.maxMessageBytes));
    for (const m of methods) server.register(m.path, relay(upstream, m) as never, raw, raw, KIND(m));
    server.bindAsync(values.listen, grpc.ServerCredentials.createInsecure(), (error, port) => {
      if (error) {
        console.error(`transport: cannot listen on ${values.listen}: ${error.message}`);
        Deno.exit(1);
      }
      const host = values.listen.slice(0, values.listen.lastIndexOf(":"));
      console.log(`listening on ${host}:${port}`);
    });
    // The supervisor's stdin pipe closes when the service process dies (even by kill -9): a front
    // without its service must not keep the port.
    void (async () => {
      for await (const _ of Deno.stdin.readable) { /* never written */ }
      server.forceShutdown();
      Deno.exit(0);
    })();
    // The supervisor stops this process with SIGTERM once the service drained; nothing to keep.
    Deno.addSignalListener("SIGTERM", () => {
      server.forceShutdown();
      Deno.exit(0);
    });
  },
};

if (import.meta.main) await runCommand(FRONT_COMMAND);
