/**
 * Service bootstrap shared by every services/<name>/main.ts (ARCHITECTURE.md: flags/env -> config ->
 * start, print `listening on HOST:PORT`, drain on SIGTERM).
 *
 *   await runService({
 *     name: "reward",
 *     defaultPort: 50052,
 *     flags: { modelRoot: { type: "string", env: ["REWARD_MODEL_ROOT"], default: "models" } },
 *     setup: async (server, flags) => { server.addService(RewardService, impl(flags.modelRoot)); },
 *   });
 *
 * Common flags: --host / --port (env <PREFIX>_HOST / <PREFIX>_PORT, then RDPO_HOST / RDPO_PORT; port 0
 * picks a free one), --max-message-bytes, --drain-timeout-ms (bounded wait for in-flight calls),
 * --metrics-port (env <PREFIX>_METRICS_PORT; 0, the default, serves no Prometheus /metrics).
 * Every call runs through the OpenTelemetry middleware (lib/telemetry/grpc.ts) unless
 * `telemetry: false`; spans are exported when the process runs with OTEL_DENO=true.
 */
import { HealthCheckResponse_ServingStatus as Serving } from "../../gen/grpc/health/v1/health_pb.ts";
import { FlagError, type FlagSpec, type FlagSpecs, type FlagValues, parseFlags } from "./flags.ts";
import { type CommandSpec, parseOrExit } from "../cli/command.ts";
import {
  type BoundAddress,
  createServer,
  DEFAULT_MAX_MESSAGE_BYTES,
  type RpcServer,
  type ShutdownResult,
} from "./server.ts";
import type { TokenEntry } from "./auth.ts";
import { openServerSecurity, securityFlags } from "./security.ts";
import type { CallMiddleware } from "./types.ts";
import { PROBE_SERVICES, serverTelemetry } from "../telemetry/grpc.ts";
import { type SupervisedTransport, superviseTransport } from "./transport/supervisor.ts";
import { concurrencyLimit, DEFAULT_MAX_CONCURRENT_CALLS } from "./concurrency.ts";
import { type MetricsServer, startMetricsServer } from "../telemetry/metrics_server.ts";

/** The flags every service has. */
export function commonFlags(prefix: string, defaultPort: number) {
  return {
    host: {
      type: "string",
      env: [`${prefix}_HOST`, "RDPO_HOST"],
      default: "127.0.0.1",
      description: "address to bind (0.0.0.0 for all interfaces)",
    },
    port: {
      type: "int",
      env: [`${prefix}_PORT`, "RDPO_PORT"],
      default: defaultPort,
      min: 0,
      max: 65535,
      description: "port to bind; 0 picks a free one",
    },
    maxMessageBytes: {
      type: "int",
      env: [`${prefix}_MAX_MESSAGE_BYTES`, "RDPO_MAX_MESSAGE_BYTES"],
      default: DEFAULT_MAX_MESSAGE_BYTES,
      min: 1024,
      max: 2 ** 31 - 1,
      description: "largest request and response message",
    },
    maxConcurrentCalls: {
      type: "int",
      env: [`${prefix}_MAX_CONCURRENT_CALLS`, "RDPO_MAX_CONCURRENT_CALLS"],
      default: DEFAULT_MAX_CONCURRENT_CALLS,
      min: 1,
      description: "calls of one method running at once; more: RESOURCE_EXHAUSTED (health exempt)",
    },
    drainTimeoutMs: {
      type: "int",
      env: [`${prefix}_DRAIN_TIMEOUT_MS`, "RDPO_DRAIN_TIMEOUT_MS"],
      default: 10_000,
      min: 0,
      description: "on SIGTERM, how long in-flight calls may finish before they are cancelled",
    },
    transport: {
      type: "string",
      env: [`${prefix}_TRANSPORT`, "RDPO_TRANSPORT"],
      default: "direct",
      choices: ["direct", "supervised"],
      description: "direct: gRPC served in this process; supervised: by a child process that is " +
        "restarted if it dies (lib/rpc/transport/front.ts; for peers outside our control)",
    },
    metricsPort: {
      type: "int",
      env: [`${prefix}_METRICS_PORT`],
      default: 0,
      min: 0,
      max: 65535,
      description: "port of the Prometheus /metrics endpoint (on --host); 0: no endpoint",
    },
    ...securityFlags(prefix),
  } as const satisfies FlagSpecs;
}

type Common = ReturnType<typeof commonFlags>;

export interface ServiceMainOptions<F extends FlagSpecs> {
  /** Service name, e.g. "reward"; the env prefix is its upper case (REWARD_HOST). */
  name: string;
  envPrefix?: string;
  defaultPort?: number;
  /** Service-specific flags, parsed together with the common ones. */
  flags?: F;
  /** For --help and the README: one line on what the service does, and one or two command lines. */
  summary?: string;
  examples?: readonly string[];
  /** Command-line arguments (default Deno.args). */
  args?: readonly string[];
  /** Environment lookup (default Deno.env.get). */
  env?: (name: string) => string | undefined;
  /** Middleware for every call, after the telemetry middleware. */
  onCall?: CallMiddleware[];
  /** Install the OpenTelemetry server middleware (default true). */
  telemetry?: boolean;
  /** Tokens accepted besides --auth-tokens-file's (the reward service's --admin-token). */
  extraTokens?: (flags: FlagValues<Common & F>) => TokenEntry[];
  /** Where security notes (reloads, the startup summary) go; default stderr. */
  log?: (message: string) => void;
  /**
   * Registers the services (and loads models). May return a cleanup run after the drain. Health
   * stays NOT_SERVING until it resolves.
   */
  setup: (
    server: RpcServer,
    flags: FlagValues<Common & F>,
    positionals: string[],
  ) => Promise<void | (() => Promise<void> | void)> | void | (() => Promise<void> | void);
}

export interface RunningService<F extends FlagSpecs> {
  server: RpcServer;
  /** The public address (the supervised front's when there is one). */
  address: BoundAddress;
  /** The supervised front, when --transport is supervised. */
  transport?: SupervisedTransport;
  flags: FlagValues<Common & F>;
  /** Graceful stop: NOT_SERVING, drain (bounded by --drain-timeout-ms), cleanup. */
  stop(): Promise<ShutdownResult>;
}

/**
 * Parses flags, builds the server, runs `setup`, binds, and marks every service SERVING. Does not
 * print, install signal handlers or exit (runService does); usable in tests.
 */
export async function startService<F extends FlagSpecs = Record<never, FlagSpec>>(
  options: ServiceMainOptions<F>,
): Promise<RunningService<F>> {
  const specs = serviceFlags(options);
  const { values, positionals } = parseFlags(options.args ?? Deno.args, specs, options.env);
  const flags = values as FlagValues<Common & F>;
  const common = values as unknown as FlagValues<Common>;
  const log = options.log ?? ((m: string) => console.error(`${options.name}: ${m}`));
  const security = openServerSecurity(common, common.host, {
    extraTokens: options.extraTokens?.(flags),
    log,
  });
  const server = createServer({
    maxReceiveMessageBytes: common.maxMessageBytes,
    maxSendMessageBytes: common.maxMessageBytes,
    onCall: [
      ...(options.telemetry ?? true ? [serverTelemetry({ skipSpansFor: PROBE_SERVICES })] : []),
      // Authorization before the service's own middleware, so a refused call costs nothing more.
      ...(security.middleware ? [security.middleware] : []),
      concurrencyLimit(common.maxConcurrentCalls).middleware,
      ...(options.onCall ?? []),
    ],
  });
  server.health.setStatus("", Serving.NOT_SERVING);
  let cleanup: Awaited<ReturnType<typeof options.setup>>;
  let address: BoundAddress;
  const supervised = common.transport === "supervised";
  let transport: SupervisedTransport | undefined;
  try {
    if (supervised && security.tls) {
      // The relay child (transport/front.ts) speaks plaintext HTTP/2 on the public port.
      throw new FlagError(
        "--transport supervised: not available with TLS (--tls-cert); use --transport direct",
      );
    }
    cleanup = await options.setup(server, flags, positionals);
    // Supervised: the service listens on loopback only; the relay child serves the public port.
    address = supervised
      ? await server.listen("127.0.0.1", 0)
      : await server.listen(common.host, common.port, security.credentials);
    if (supervised) {
      try {
        transport = await superviseTransport({
          host: common.host,
          port: common.port,
          upstream: address.address,
          maxMessageBytes: common.maxMessageBytes,
          services: server.services,
          log: (line) => console.error(`${options.name}: ${line}`),
        });
      } catch (e) {
        server.forceShutdown();
        throw e;
      }
      address = transport.address;
    }
  } catch (e) {
    security.close();
    throw e;
  }
  log(`security: ${security.summary}`);
  let metrics: MetricsServer | undefined;
  if (common.metricsPort > 0) {
    try {
      metrics = await startMetricsServer({ hostname: common.host, port: common.metricsPort });
    } catch (e) {
      server.forceShutdown();
      security.close();
      await transport?.stop(0);
      throw e;
    }
    console.error(`${options.name}: metrics on ${metrics.url}`);
  }
  server.health.setStatus("", Serving.SERVING);
  for (const service of server.services) server.health.setStatus(service.typeName, Serving.SERVING);
  let stopping: Promise<ShutdownResult> | undefined;
  return {
    server,
    address,
    transport,
    flags,
    stop() {
      stopping ??= (async () => {
        const result = await server.shutdown(common.drainTimeoutMs);
        await transport?.stop();
        await metrics?.close();
        security.close();
        if (typeof cleanup === "function") await cleanup();
        return result;
      })();
      return stopping;
    },
  };
}

function prefixOf(options: { name: string; envPrefix?: string }): string {
  return options.envPrefix ?? options.name.toUpperCase().replace(/[^A-Z0-9]/g, "_");
}

/** Every flag of a service: the common ones, then its own. */
export function serviceFlags<F extends FlagSpecs>(options: ServiceMainOptions<F>): Common & F {
  return { ...commonFlags(prefixOf(options), options.defaultPort ?? 0), ...(options.flags ?? {}) } as
    & Common
    & F;
}

/** The service as a command (`deno task serve:<name>`, `rdpo serve <name>`): help, README, rdpo. */
export function serviceCommand<F extends FlagSpecs>(options: ServiceMainOptions<F>): CommandSpec<Common & F> {
  return {
    name: `serve:${options.name}`,
    summary: options.summary ?? `serves the ${options.name} gRPC service`,
    description: `Prints one line "listening on HOST:PORT" to stdout once serving; SIGTERM/SIGINT drain ` +
      `in-flight calls (bounded by --drain-timeout-ms) and exit 0.`,
    flags: serviceFlags(options),
    examples: options.examples ?? [`deno task serve:${options.name} --port 0`],
    run: (_values, _positionals, args) => serve({ ...options, args }),
  };
}

/**
 * The whole life of a service process: parse (help/version exit 0, a bad flag prints one line and
 * exits 2: lib/cli/command.ts), print the settings line to stderr, start, print exactly one line
 * `listening on HOST:PORT` to stdout, and on SIGTERM/SIGINT drain (bounded) and exit 0.
 */
export async function runService<F extends FlagSpecs = Record<never, FlagSpec>>(
  options: ServiceMainOptions<F>,
): Promise<RunningService<F>> {
  const args = options.args ?? Deno.args;
  parseOrExit(serviceCommand(options), args);
  return await serve({ ...options, args });
}

/** Starts (a FlagError from setup exits 2, one line), prints `listening on`, drains on signals. */
async function serve<F extends FlagSpecs>(options: ServiceMainOptions<F>): Promise<RunningService<F>> {
  let running: RunningService<F>;
  try {
    running = await startService(options);
  } catch (e) {
    if (e instanceof FlagError) {
      console.error(`${options.name}: ${e.message}`);
      Deno.exit(2);
    }
    throw e;
  }
  console.log(`listening on ${running.address.address}`);
  let signals = 0;
  const onSignal = async (signal: Deno.Signal) => {
    signals++;
    if (signals > 1) {
      console.error(`${options.name}: second ${signal}, stopping now`);
      running.server.forceShutdown();
      await running.transport?.stop(0);
      Deno.exit(0);
    }
    console.error(`${options.name}: ${signal}, draining (up to ${running.flags.drainTimeoutMs} ms)`);
    const result = await running.stop();
    if (!result.drained) {
      console.error(`${options.name}: cancelled ${result.abandoned} call(s) still running`);
    }
    Deno.exit(0);
  };
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    Deno.addSignalListener(signal, () => void onSignal(signal));
  }
  return running;
}
