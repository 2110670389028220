/**
 * Test helpers for gRPC code: start a real server on 127.0.0.1 with a free port in-process, and
 * stop it (with its clients) at the end of the test.
 */
import { type ClientOf, type ClientOptions, createClient } from "./client.ts";
import { createServer, type RpcServer, type ServerOptions } from "./server.ts";
import { RpcError } from "./status.ts";
import type { GenService, GenServiceMethods } from "./types.ts";

export interface TestServer {
  server: RpcServer;
  /** "127.0.0.1:PORT" */
  address: string;
  port: number;
  /** A client of `service` on this server, closed by `close()`. */
  client<S extends GenServiceMethods>(
    service: GenService<S>,
    options?: ClientOptions,
  ): ClientOf<GenService<S>>;
  /** Closes the clients and force-stops the server. */
  close(): Promise<void>;
}

export async function startTestServer(
  setup: (server: RpcServer) => void,
  options: ServerOptions = {},
): Promise<TestServer> {
  const server = createServer(options);
  setup(server);
  const bound = await server.listen("127.0.0.1", 0);
  const clients: { close(): void }[] = [];
  return {
    server,
    address: bound.address,
    port: bound.port,
    client(service, clientOptions) {
      const c = createClient(service, bound.address, clientOptions);
      clients.push(c);
      return c as never;
    },
    async close() {
      for (const c of clients) c.close();
      if (server.health.shuttingDown) {
        server.forceShutdown();
        return;
      }
      await server.shutdown(0);
    },
  };
}

/** A promise with its resolve function exposed. */
export function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** Awaits `fn()`, which must fail with an RpcError; returns it (typed, for `.code` / `.details`). */
export async function rpcFailure(fn: () => Promise<unknown>): Promise<RpcError> {
  try {
    await fn();
  } catch (e) {
    if (e instanceof RpcError) return e;
    throw new Error(
      `expected an RpcError, got ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`,
    );
  }
  throw new Error("expected the call to fail with an RpcError, it succeeded");
}
