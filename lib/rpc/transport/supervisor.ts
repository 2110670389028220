/**
 * Runs the public gRPC transport (front.ts) as a child process relaying to the service's loopback
 * server, and restarts it on the same port whenever it dies (see front.ts for why). The service
 * process keeps everything stateful: a dead front only cancels the calls it was relaying, which the
 * service process sees as cancelled calls (its in-flight accounting and drain stay right).
 */
import type { DescService } from "@bufbuild/protobuf";
import { type SpawnedService, spawnService } from "../spawn.ts";
import { wireMethod } from "../methods.ts";
import { type BoundAddress, formatAddress } from "../server.ts";
import type { RelayMethod } from "./relay_options.ts";

export interface TransportOptions {
  /** Public address the front binds (port 0: a free one, kept across restarts). */
  host: string;
  port: number;
  /** The service process' own server, "127.0.0.1:PORT". */
  upstream: string;
  maxMessageBytes: number;
  services: readonly DescService[];
  /** Where restarts are reported (default console.error). */
  log?: (line: string) => void;
  /** Longest wait between two restarts after repeated failures (default 5000 ms). */
  maxBackoffMs?: number;
}

export interface SupervisedTransport {
  /** The public address peers use. */
  readonly address: BoundAddress;
  /** Times the front died and was started again. */
  readonly restarts: number;
  /** Exit descriptions of the fronts that died ("signal SIGSEGV", "code 134"). */
  readonly deaths: readonly string[];
  /** The running front's process id (tests kill it to check the restart). */
  readonly pid: number;
  /** Resolves once a front is listening again (immediately when one is). */
  ready(): Promise<void>;
  /** Stops supervising and stops the front (SIGTERM, then SIGKILL after `graceMs`). */
  stop(graceMs?: number): Promise<void>;
}

const FRONT = "lib/rpc/transport/front.ts";

/** Every method of `services` as the relay needs it. */
export function relayMethods(services: readonly DescService[]): RelayMethod[] {
  return services.flatMap((s) =>
    s.methods.map((m) => {
      const w = wireMethod(m);
      return { path: w.path, requestStream: w.requestStream, responseStream: w.responseStream };
    })
  );
}

export async function superviseTransport(options: TransportOptions): Promise<SupervisedTransport> {
  const log = options.log ?? ((line: string) => console.error(line));
  const methods = JSON.stringify(relayMethods(options.services));
  const args = (port: number) => [
    "--listen",
    formatAddress(options.host, port),
    "--upstream",
    options.upstream,
    "--max-message-bytes",
    String(options.maxMessageBytes),
    "--methods",
    methods,
  ];
  let front: SpawnedService = await spawnService(FRONT, args(options.port), { lifeline: true });
  const port = Number(front.address.slice(front.address.lastIndexOf(":") + 1));
  const address: BoundAddress = { host: options.host, port, address: formatAddress(options.host, port) };
  let stopping = false;
  let restarts = 0;
  const deaths: string[] = [];
  let restarting: Promise<void> = Promise.resolve();
  const maxBackoff = options.maxBackoffMs ?? 5000;

  const watch = (child: SpawnedService) => {
    void child.exited.then((exit) => {
      if (stopping) return;
      deaths.push(exit);
      log(`transport: the gRPC front on ${address.address} died (${exit}); starting another`);
      restarting = (async () => {
        for (let attempt = 0; !stopping; attempt++) {
          try {
            front = await spawnService(FRONT, args(port), { lifeline: true });
            restarts++;
            if (stopping) await front.stop(0);
            else watch(front);
            return;
          } catch (error) {
            const wait = Math.min(maxBackoff, 100 * 2 ** attempt);
            log(
              `transport: restart failed (${(error as Error).message.slice(0, 200)}); retrying in ${wait} ms`,
            );
            await new Promise((r) => setTimeout(r, wait));
          }
        }
      })();
    });
  };
  watch(front);

  return {
    address,
    get restarts() {
      return restarts;
    },
    deaths,
    get pid() {
      return front.pid;
    },
    ready: () => restarting,
    async stop(graceMs = 5000) {
      stopping = true;
      await restarting;
      await front.stop(graceMs);
    },
  };
}
