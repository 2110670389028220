/** The registry's public shapes: scorer sources, states, statuses, leases (registry.ts). */
import type { BatchingConfig, BatchResult } from "./batcher.ts";
import type { RgbImage, Scorer } from "./scorer.ts";
import type { StatsSnapshot } from "./scorer_stats.ts";

export type ScorerState = "LOADING" | "READY" | "DRAINING" | "FAILED";

/** Where a scorer comes from. */
export interface ScorerSource {
  /**
   * A built-in kind that needs no files ("jpeg_compressibility", ...), or, with `bundlePath`, an
   * optional expected kind ("" = whatever the bundle's manifest says).
   */
  kind: string;
  /** Absolute bundle folder, already resolved inside the model root (paths.ts). */
  bundlePath?: string;
}

/** Builds a scorer from a source (bundle.ts's createScorer behind an adapter in main.ts). */
export type ScorerFactory = (source: ScorerSource) => Promise<Scorer>;

/** What ListScorers shows of one version. */
export interface ScorerStatus extends StatsSnapshot {
  name: string;
  version: string;
  kind: string;
  state: ScorerState;
  /** Unix ms: when it became READY (when the load started, while LOADING or FAILED). */
  loadedAtMs: number;
  inFlight: number;
  batching: BatchingConfig;
  needsPrompts: boolean;
  /** Why the load failed (FAILED), else "". */
  error: string;
  /** Bundle folder, or "" for built-ins. */
  bundlePath: string;
}

/** A request's hold on one version; release it when the reply is sent. */
export interface ScorerLease {
  readonly name: string;
  readonly version: string;
  readonly kind: string;
  readonly needsPrompts: boolean;
  /** Scores through the version's dynamic batcher (and counts the request in its stats). */
  score(images: RgbImage[], prompts: string[], signal?: AbortSignal): Promise<BatchResult>;
  /** Idempotent. */
  release(): void;
}

export interface UnloadResult {
  /** Requests that were in flight when the unload started and finished during the drain. */
  drainedRequests: number;
  /** Requests still running when the drain timeout passed (their scorer was closed under them). */
  abandonedRequests: number;
}

export type LogFn = (level: "info" | "warn" | "error", message: string) => void;

export interface RegistryOptions {
  factory: ScorerFactory;
  /** Batching used when a load asks for none (fields that are 0 take these). */
  defaultBatching: BatchingConfig;
  /** Drain bound when unload gets 0 (ms). */
  defaultDrainTimeoutMs?: number;
  log?: LogFn;
}
