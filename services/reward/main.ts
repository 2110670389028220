/**
 * The reward service's entry point, on lib/rpc's bootstrap: flags/env -> registry, core and gRPC
 * service; `listening on HOST:PORT` is printed once every preload is READY (health stays
 * NOT_SERVING until then), and SIGTERM/SIGINT drain in-flight calls, then every scorer version.
 *
 * Flags (each also from the environment as REWARD_<FLAG>, e.g. REWARD_ADMIN_TOKEN; `--help` lists
 * them): the common --host, --port (default 50051), --max-message-bytes, --drain-timeout-ms (also
 * the default bound when a version is unloaded), plus the ones in REWARD_FLAGS below.
 *
 * `--preload` is a comma-separated list of
 *   name@version=bundle[:alias]        a bundle folder relative to --model-root
 *   name[@version]=kind:KIND[:alias]   a built-in kind (version defaults to "builtin")
 * The built-in scorers jpeg_compressibility, jpeg_incompressibility and colorfulness are preloaded as
 * `<kind>@builtin` unless --no-builtins, so the service is useful with no model files.
 */
import { configurePreprocessPool } from "./preprocess/pool.ts";
import { InvalidArgumentError } from "../../lib/errors.ts";
import { type TokenEntry, TokenTable } from "../../lib/rpc/auth.ts";
import { FlagError, type FlagSpecs, type FlagValues } from "../../lib/rpc/flags.ts";
import { type commonFlags, type RunningService, serviceCommand, startService } from "../../lib/rpc/main.ts";
import { runCommand } from "../../lib/cli/command.ts";
import type { RpcServer } from "../../lib/rpc/server.ts";
import { MAX_BATCH_LIMIT, MAX_QUEUE_DELAY_LIMIT_MS } from "./batcher.ts";
import { BUILTIN_KINDS } from "./bundle.ts";
import { DEFAULT_LIMITS, RewardCore } from "./core.ts";
import { type LogFn, ScorerRegistry } from "./registry.ts";
import { ModelRepositoryPoller } from "./repository.ts";
import { bundleScorerFactory } from "./scorer_factory.ts";
import { EXECUTION_PROVIDERS, type ExecutionProvider } from "./scorers/onnx_session.ts";
import { addRewardService } from "./service.ts";

export const REWARD_DEFAULT_PORT = 50051;

const env = (flag: string) => [`REWARD_${flag}`];

export const REWARD_FLAGS = {
  modelRoot: {
    type: "string",
    env: env("MODEL_ROOT"),
    description: "folder bundles are loaded from (LoadScorer bundle, --preload, --poll-repository)",
  },
  adminToken: {
    type: "string",
    env: env("ADMIN_TOKEN"),
    description: 'require "authorization: Bearer TOKEN" on LoadScorer, UnloadScorer, SetAlias',
  },
  maxBatch: {
    type: "int",
    env: env("MAX_BATCH"),
    default: 16,
    min: 1,
    max: MAX_BATCH_LIMIT,
    description: "default dynamic-batching max batch (images) per scorer version",
  },
  maxQueueDelayMs: {
    type: "number",
    env: env("MAX_QUEUE_DELAY_MS"),
    // Chosen by measurement (services/reward/PERFORMANCE.md, `deno task bench --only reward`):
    // under 32 batch-1 clients batches fill while the scorer is busy (mean batch 10.6-12.6 at 0-2 ms),
    // so a delay only adds latency. Share of the scorer's own batch gain, three runs on 2 cores
    // (wire3, loads 6 / 1.5 / 1.3): 0 ms 1.08 / 1.00 / 0.76 (median 1.00), 0.5 ms - / - / 0.83,
    // 1 ms 0.86 / 0.92 / 0.70 (0.86), 2 ms 1.16 / 0.94 / 0.70 (0.94), 5 ms 1.00 / 0.98 / 0.76 (0.98).
    default: 0,
    min: 0,
    max: MAX_QUEUE_DELAY_LIMIT_MS,
    description: "default dynamic-batching queue delay per scorer version",
  },
  executionProvider: {
    type: "string",
    env: env("EXECUTION_PROVIDER"),
    default: "cpu",
    choices: EXECUTION_PROVIDERS,
    description: "ONNX Runtime execution provider",
  },
  intraOpThreads: {
    type: "int",
    env: env("INTRA_OP_THREADS"),
    default: 0,
    min: 0,
    max: 1024,
    description: "ONNX Runtime intra-op threads (0: its default)",
  },
  ortSpinning: {
    type: "bool",
    env: env("ORT_SPINNING"),
    default: false,
    description: "ONNX Runtime pool threads spin-wait after a run (ORT's default; off: they sleep)",
  },
  preprocessWorkers: {
    type: "int",
    env: env("PREPROCESS_WORKERS"),
    default: 0,
    min: 0,
    max: 64,
    // Off by default: measured slower on 2 cores (the images are copied to the workers; preprocess/pool.ts).
    description: "workers that preprocess a batch's images on other cores (0: in the request's thread)",
  },
  preload: {
    type: "string",
    env: env("PRELOAD"),
    default: "",
    description: "comma-separated name@version=bundle[:alias] | name[@version]=kind:KIND[:alias]",
  },
  builtins: {
    type: "bool",
    env: env("BUILTINS"),
    default: true,
    description: `preload ${BUILTIN_KINDS.join(", ")} (--no-builtins: do not)`,
  },
  pollRepository: {
    type: "bool",
    env: env("POLL_REPOSITORY"),
    default: false,
    description:
      "poll --model-root as <root>/<name>/<version>/manifest.json; serve the latest as alias <name>",
  },
  pollIntervalMs: {
    type: "int",
    env: env("POLL_INTERVAL_MS"),
    default: 5000,
    min: 10,
    description: "repository polling interval",
  },
  maxImageSide: {
    type: "int",
    env: env("MAX_IMAGE_SIDE"),
    default: DEFAULT_LIMITS.maxImageSide,
    min: 1,
    max: 65535,
    description: "largest accepted image width or height",
  },
  maxImagesPerRequest: {
    type: "int",
    env: env("MAX_IMAGES_PER_REQUEST"),
    default: DEFAULT_LIMITS.maxImagesPerRequest,
    min: 1,
    description: "most images in one Score request (more: RESOURCE_EXHAUSTED)",
  },
} as const satisfies FlagSpecs;

export type RewardFlags = FlagValues<ReturnType<typeof commonFlags> & typeof REWARD_FLAGS>;

export interface Preload {
  name: string;
  version: string;
  bundle: string;
  kind: string;
  alias: string;
}

/** `name@version=bundle[:alias]` or `name[@version]=kind:KIND[:alias]`. */
export function parsePreload(spec: string, field = "--preload"): Preload {
  const eq = spec.indexOf("=");
  if (eq <= 0) {
    throw new InvalidArgumentError(
      field,
      `expected name@version=bundle[:alias] or name=kind:KIND, got ${JSON.stringify(spec)}`,
    );
  }
  const [name, version = ""] = spec.slice(0, eq).split("@", 2);
  let target = spec.slice(eq + 1);
  let alias = "";
  let kind = "";
  let bundle = "";
  if (target.startsWith("kind:")) {
    target = target.slice("kind:".length);
    const colon = target.indexOf(":");
    kind = colon < 0 ? target : target.slice(0, colon);
    alias = colon < 0 ? "" : target.slice(colon + 1);
    if (!kind) throw new InvalidArgumentError(field, `empty kind in ${JSON.stringify(spec)}`);
  } else {
    const colon = target.lastIndexOf(":");
    bundle = colon < 0 ? target : target.slice(0, colon);
    alias = colon < 0 ? "" : target.slice(colon + 1);
    if (!bundle) throw new InvalidArgumentError(field, `empty bundle in ${JSON.stringify(spec)}`);
    if (!version) {
      throw new InvalidArgumentError(
        field,
        `a bundle preload needs name@version, got ${JSON.stringify(spec)}`,
      );
    }
  }
  return { name, version: version || "builtin", bundle, kind, alias };
}

/** Every preload of the flags, built-ins first. Problems are FlagErrors naming --preload. */
export function preloadsOf(flags: Pick<RewardFlags, "preload" | "builtins" | "modelRoot">): Preload[] {
  const builtins = flags.builtins
    ? BUILTIN_KINDS.map((kind) => ({ name: kind, version: "builtin", bundle: "", kind, alias: "" }))
    : [];
  const specs = flags.preload.split(",").map((s) => s.trim()).filter(Boolean);
  const preloads = specs.map((spec, i) => {
    try {
      return parsePreload(spec, `--preload[${i}]`);
    } catch (error) {
      throw new FlagError((error as Error).message);
    }
  });
  if (preloads.some((p) => p.bundle) && !flags.modelRoot) {
    throw new FlagError("--preload: bundle preloads need --model-root");
  }
  return [...builtins, ...preloads];
}

/** What a started reward service exposes (tests and benchmarks drive it in-process). */
export interface RewardParts {
  registry: ScorerRegistry;
  core: RewardCore;
  poller?: ModelRepositoryPoller;
}

/**
 * The bootstrap's setup step: builds registry and core, serves RewardService, preloads (every
 * preload must become READY or the start fails), starts polling; returns the cleanup that runs
 * after the server drained (stop polling, drain and close every version).
 */
export async function setupReward(
  server: RpcServer,
  flags: RewardFlags,
  parts: Partial<RewardParts>,
  log?: LogFn,
): Promise<() => Promise<void>> {
  if (flags.pollRepository && !flags.modelRoot) throw new FlagError("--poll-repository: needs --model-root");
  const preloads = preloadsOf(flags);
  const registry = new ScorerRegistry({
    factory: bundleScorerFactory({
      modelRoot: flags.modelRoot,
      executionProvider: flags.executionProvider as ExecutionProvider,
      intraOpNumThreads: flags.intraOpThreads,
      allowSpinning: flags.ortSpinning,
    }),
    defaultBatching: { maxBatch: flags.maxBatch, maxQueueDelayMs: flags.maxQueueDelayMs },
    defaultDrainTimeoutMs: flags.drainTimeoutMs,
    log,
  });
  const core = new RewardCore({
    registry,
    modelRoot: flags.modelRoot,
    limits: { maxImageSide: flags.maxImageSide, maxImagesPerRequest: flags.maxImagesPerRequest },
  });
  // --admin-token is one admin entry of the general token mechanism (lib/rpc/auth.ts), installed
  // by startService through REWARD_EXTRA_TOKENS; the service itself checks nothing.
  addRewardService(server, core);
  configurePreprocessPool(flags.preprocessWorkers);
  let poller: ModelRepositoryPoller | undefined;
  try {
    for (const p of preloads) {
      await core.loadScorer({
        name: p.name,
        version: p.version,
        bundle: p.bundle,
        kind: p.kind,
        alias: p.alias,
      });
    }
    if (flags.pollRepository && flags.modelRoot) {
      poller = new ModelRepositoryPoller({
        registry,
        root: flags.modelRoot,
        intervalMs: flags.pollIntervalMs,
        drainTimeoutMs: flags.drainTimeoutMs,
        log,
      });
      await poller.pollOnce(); // the repository's models serve from the first call on
      poller.start();
    }
  } catch (error) {
    await poller?.stop();
    await registry.closeAll(1);
    configurePreprocessPool(0);
    throw error;
  }
  Object.assign(parts, { registry, core, poller });
  return async () => {
    await poller?.stop();
    await registry.closeAll(flags.drainTimeoutMs);
    configurePreprocessPool(0);
  };
}

/** --admin-token as a token-table entry with role admin (SECURITY.md). */
function adminTokenEntry(flags: { adminToken?: string }): TokenEntry[] {
  return flags.adminToken ? [TokenTable.entry("admin-token", "admin", flags.adminToken)] : [];
}

export interface RunningReward extends RewardParts {
  service: RunningService<typeof REWARD_FLAGS>;
  /** "host:port" bound. */
  address: string;
  /** Graceful stop: drain calls, then drain and close every scorer version. */
  stop(): Promise<void>;
}

/** Starts the reward service in-process (tests, benchmarks): no printing, no signal handlers. */
export async function startReward(
  args: string[],
  envLookup: (name: string) => string | undefined = () => undefined,
  log?: LogFn,
): Promise<RunningReward> {
  const parts: Partial<RewardParts> = {};
  const service = await startService({
    name: "reward",
    defaultPort: REWARD_DEFAULT_PORT,
    flags: REWARD_FLAGS,
    extraTokens: adminTokenEntry,
    args,
    env: envLookup,
    setup: (server, flags) => setupReward(server, flags, parts, log),
  });
  return {
    ...(parts as RewardParts),
    service,
    address: service.address.address,
    async stop() {
      await service.stop();
    },
  };
}

/** `serve:reward` as a command (help, README, `rdpo serve reward`). */
export const REWARD_COMMAND = serviceCommand({
  name: "reward",
  defaultPort: REWARD_DEFAULT_PORT,
  flags: REWARD_FLAGS,
  extraTokens: adminTokenEntry,
  summary: "serves RewardService: built-in and ONNX scorers with dynamic batching and versions",
  examples: [
    "deno task serve:reward",
    "deno task serve:reward --port 0 --max-batch 32 --metrics-port 9464",
  ],
  setup: (server, flags) => setupReward(server, flags, {}),
});

if (import.meta.main) {
  try {
    await runCommand(REWARD_COMMAND);
  } catch (error) {
    console.error(`reward: cannot start: ${(error as Error).message}`);
    Deno.exit(1);
  }
}
