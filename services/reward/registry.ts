/**
 * Runtime model management for the reward service, Triton-style explicit model control
 * (INFRA.md, "Runtime model swap"):
 *
 * - `load` creates the new version BESIDE any serving one, runs one warm-up batch (a small
 *   synthetic image, plus a prompt for text scorers), and only then marks it READY and, if asked,
 *   points an alias at it. A failed load or warm-up leaves every serving version and alias
 *   untouched; the version stays listed as FAILED with the error text until it is loaded again
 *   or unloaded.
 * - Each request resolves its scorer reference ONCE, at its start, and holds a lease (a refcount)
 *   on that exact version until it replies, so flipping an alias or unloading never fails a
 *   request that already started.
 * - `unload` marks the version DRAINING (new requests can no longer resolve it), waits for the
 *   leases to be released (bounded by the drain timeout), then closes the batcher and the scorer.
 *
 * Reference resolution (`resolve`), in this order:
 * 1. "name@version": exactly that version (must be READY).
 * 2. an alias: the version the alias points at.
 * 3. a name: the READY version of that name that became READY most recently (version strings are
 *    free-form labels such as "v2", "2024-05-01" or a hash, so "latest loaded" is the only order
 *    they all share). An alias with the same text as a name wins over the name.
 */
import {
  AlreadyExistsError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  ServiceError,
  UnavailableError,
} from "../../lib/errors.ts";
import { type BatchingConfig, DynamicBatcher, resolveBatchingConfig } from "./batcher.ts";
import type { Scorer } from "./scorer.ts";
import { ScorerStats } from "./scorer_stats.ts";
import { recordAliasSwap } from "../../lib/telemetry/reward.ts";
import type {
  LogFn,
  RegistryOptions,
  ScorerFactory,
  ScorerLease,
  ScorerSource,
  ScorerState,
  ScorerStatus,
  UnloadResult,
} from "./registry_types.ts";
import { warmUp } from "./warmup.ts";

export * from "./registry_types.ts";
export { WARMUP_PROMPT, warmupImage } from "./warmup.ts";

export const DEFAULT_DRAIN_TIMEOUT_MS = 30_000;
const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

interface Entry {
  readonly name: string;
  readonly version: string;
  readonly ref: string;
  readonly source: ScorerSource;
  readonly batching: BatchingConfig;
  readonly stats: ScorerStats;
  kind: string;
  state: ScorerState;
  loadedAtMs: number;
  /** Order in which versions became READY (name resolution picks the highest). */
  readySeq: number;
  needsPrompts: boolean;
  error: string;
  scorer?: Scorer;
  batcher?: DynamicBatcher;
  inFlight: number;
  idleWaiters: (() => void)[];
  unloading?: Promise<UnloadResult>;
}

export function scorerRef(name: string, version: string): string {
  return `${name}@${version}`;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export class ScorerRegistry {
  readonly defaultBatching: BatchingConfig;
  readonly #factory: ScorerFactory;
  readonly #drainTimeoutMs: number;
  readonly #log: LogFn;
  readonly #entries = new Map<string, Entry>();
  readonly #aliases = new Map<string, string>();
  #readySeq = 0;

  constructor(options: RegistryOptions) {
    this.#factory = options.factory;
    this.defaultBatching = resolveBatchingConfig(options.defaultBatching, options.defaultBatching);
    this.#drainTimeoutMs = options.defaultDrainTimeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS;
    // Logs go to stderr: stdout carries only the `listening on` line that launchers wait for.
    this.#log = options.log ?? ((_level, message) => console.error(`[reward] ${message}`));
  }

  /**
   * Loads `name@version` beside the serving versions, warms it up, marks it READY, then (if given)
   * points `alias` at it. Throws (and lists the version as FAILED) when the scorer cannot be built
   * or its warm-up fails; serving versions and aliases are untouched then.
   */
  async load(
    name: string,
    version: string,
    source: ScorerSource,
    batching?: Partial<BatchingConfig>,
    alias?: string,
  ): Promise<ScorerStatus> {
    checkName("name", name);
    checkName("version", version);
    if (alias) checkName("alias", alias);
    const config = resolveBatchingConfig(batching, this.defaultBatching);
    const ref = scorerRef(name, version);
    const existing = this.#entries.get(ref);
    if (existing && existing.state !== "FAILED") {
      throw new AlreadyExistsError(
        `scorer ${ref} is already ${existing.state.toLowerCase()}; unload it first or load another version`,
      );
    }
    const entry: Entry = {
      name,
      version,
      ref,
      source,
      batching: config,
      stats: new ScorerStats(),
      kind: source.kind,
      state: "LOADING",
      loadedAtMs: Date.now(),
      readySeq: 0,
      needsPrompts: false,
      error: "",
      inFlight: 0,
      idleWaiters: [],
    };
    this.#entries.set(ref, entry);
    this.#log("info", `loading ${ref} (${describeSource(source)})`);
    let scorer: Scorer | undefined;
    try {
      try {
        scorer = await this.#factory(source);
      } catch (error) {
        throw error instanceof ServiceError
          ? error
          : new FailedPreconditionError(`loading ${ref} failed: ${messageOf(error)}`);
      }
      entry.kind = scorer.kind;
      entry.needsPrompts = scorer.needsPrompts;
      await warmUp(ref, scorer);
    } catch (error) {
      entry.state = "FAILED";
      entry.error = messageOf(error);
      if (scorer) await closeQuietly(scorer, ref, this.#log);
      this.#log("error", `load of ${ref} failed: ${entry.error}`);
      throw error;
    }
    const loaded = scorer;
    entry.scorer = loaded;
    entry.batcher = new DynamicBatcher((images, prompts) => loaded.score(images, prompts), config, {
      telemetry: { name, version, kind: loaded.kind },
    });
    // READY and the alias flip happen in one synchronous step: no request can observe the alias
    // pointing at a version that is not READY.
    entry.state = "READY";
    entry.loadedAtMs = Date.now();
    entry.readySeq = ++this.#readySeq;
    if (alias) {
      this.#aliases.set(alias, ref);
      recordAliasSwap(alias, { name, version });
    }
    this.#log("info", `${ref} is READY (${entry.kind})${alias ? `; alias ${alias} -> ${ref}` : ""}`);
    return this.#status(entry);
  }

  /**
   * Stops new requests from resolving `name@version`, waits (at most `drainTimeoutMs`, 0 = the
   * default) for its in-flight requests, then closes it. A FAILED version is simply removed. A
   * second unload of a draining version waits for the same drain.
   */
  async unload(name: string, version: string, drainTimeoutMs = 0): Promise<UnloadResult> {
    const ref = scorerRef(name, version);
    const entry = this.#entries.get(ref);
    if (!entry) throw new NotFoundError(`scorer ${ref} is not loaded${this.#knownSuffix()}`);
    if (entry.unloading) return await entry.unloading;
    if (entry.state === "LOADING") {
      throw new FailedPreconditionError(`scorer ${ref} is still loading; unload it once the load finished`);
    }
    if (entry.state === "FAILED") {
      this.#entries.delete(ref);
      return { drainedRequests: 0, abandonedRequests: 0 };
    }
    const aliases = this.#aliasesOf(ref);
    if (aliases.length > 0) {
      throw new FailedPreconditionError(
        `scorer ${ref} is the target of alias ${aliases.join(", ")}; point the alias at another version ` +
          `(or delete it) before unloading`,
      );
    }
    entry.state = "DRAINING";
    const timeout = drainTimeoutMs > 0 ? drainTimeoutMs : this.#drainTimeoutMs;
    entry.unloading = this.#drainAndClose(entry, timeout);
    return await entry.unloading;
  }

  async #drainAndClose(entry: Entry, timeoutMs: number): Promise<UnloadResult> {
    const atStart = entry.inFlight;
    this.#log("info", `draining ${entry.ref}: ${atStart} request(s) in flight, up to ${timeoutMs} ms`);
    if (entry.inFlight > 0) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        new Promise<void>((resolve) => entry.idleWaiters.push(resolve)),
        new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs))),
      ]);
      clearTimeout(timer);
    }
    const abandoned = entry.inFlight;
    if (abandoned > 0) {
      this.#log(
        "warn",
        `${entry.ref}: drain timed out after ${timeoutMs} ms with ${abandoned} request(s) running`,
      );
    }
    entry.batcher?.close(new UnavailableError(`scorer ${entry.ref} was unloaded before the request ran`));
    if (entry.scorer) await closeQuietly(entry.scorer, entry.ref, this.#log);
    this.#entries.delete(entry.ref);
    this.#log("info", `unloaded ${entry.ref}`);
    return { drainedRequests: atStart - abandoned, abandonedRequests: abandoned };
  }

  /**
   * Points `alias` at `name@version` (which must be READY) in one step; returns the previous
   * target ("" if the alias is new). An empty name and version delete the alias.
   */
  setAlias(alias: string, name: string, version: string): string {
    checkName("alias", alias);
    const previous = this.#aliases.get(alias) ?? "";
    if (name === "" && version === "") {
      if (!previous) throw new NotFoundError(`alias ${alias} does not exist${this.#knownSuffix()}`);
      this.#aliases.delete(alias);
      this.#log("info", `alias ${alias} deleted (was ${previous})`);
      return previous;
    }
    checkName("name", name);
    checkName("version", version);
    const ref = scorerRef(name, version);
    const entry = this.#entries.get(ref);
    if (!entry) throw new NotFoundError(`scorer ${ref} is not loaded${this.#knownSuffix()}`);
    if (entry.state !== "READY") {
      throw new FailedPreconditionError(
        `scorer ${ref} is ${entry.state.toLowerCase()}; an alias can only point at a READY version`,
      );
    }
    this.#aliases.set(alias, ref);
    recordAliasSwap(alias, { name, version });
    this.#log("info", `alias ${alias} -> ${ref}${previous ? ` (was ${previous})` : ""}`);
    return previous;
  }

  /**
   * Resolves a reference (see the file comment for the rules) to one READY version and takes a
   * lease on it. Synchronous, so nothing can change between the lookup and the lease.
   */
  resolve(reference: string): ScorerLease {
    const entry = this.#lookup(reference);
    entry.inFlight++;
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      entry.inFlight--;
      if (entry.inFlight === 0) {
        const waiters = entry.idleWaiters.splice(0);
        for (const w of waiters) w();
      }
    };
    const batcher = entry.batcher!;
    return {
      name: entry.name,
      version: entry.version,
      kind: entry.kind,
      needsPrompts: entry.needsPrompts,
      async score(images, prompts, signal) {
        if (released) throw new Error(`lease on ${entry.ref} used after release()`);
        const started = performance.now();
        try {
          const result = await batcher.submit(images, prompts, signal);
          entry.stats.record(images.length, performance.now() - started, false);
          return result;
        } catch (error) {
          entry.stats.record(images.length, performance.now() - started, true);
          throw error;
        }
      },
      release,
    };
  }

  #lookup(reference: string): Entry {
    if (!reference) {
      throw new InvalidArgumentError("scorer", "empty: give a scorer name, an alias or name@version");
    }
    const at = reference.indexOf("@");
    if (at >= 0) {
      const entry = this.#entries.get(reference);
      if (!entry) throw new NotFoundError(`scorer ${reference} is not loaded${this.#knownSuffix()}`);
      return this.#servable(entry, reference);
    }
    const target = this.#aliases.get(reference);
    if (target !== undefined) {
      const entry = this.#entries.get(target);
      if (!entry) throw new UnavailableError(`alias ${reference} points at ${target}, which is not loaded`);
      return this.#servable(entry, `alias ${reference} (${target})`);
    }
    let best: Entry | undefined;
    let loading = false;
    for (const entry of this.#entries.values()) {
      if (entry.name !== reference) continue;
      if (entry.state === "LOADING") loading = true;
      if (entry.state === "READY" && (!best || entry.readySeq > best.readySeq)) best = entry;
    }
    if (best) return best;
    if (loading) throw new UnavailableError(`scorer ${reference} is still loading; retry shortly`);
    throw new NotFoundError(`no scorer, alias or version named "${reference}"${this.#knownSuffix()}`);
  }

  #servable(entry: Entry, what: string): Entry {
    switch (entry.state) {
      case "READY":
        return entry;
      case "LOADING":
        throw new UnavailableError(`scorer ${what} is still loading; retry shortly`);
      case "DRAINING":
        throw new NotFoundError(`scorer ${what} is being unloaded`);
      case "FAILED":
        throw new FailedPreconditionError(`scorer ${what} failed to load: ${entry.error}`);
    }
  }

  /** Every version (sorted by name, then load time) and the alias table. */
  list(): { scorers: ScorerStatus[]; aliases: Record<string, string> } {
    const scorers = [...this.#entries.values()]
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.loadedAtMs - b.loadedAtMs))
      .map((e) => this.#status(e));
    return { scorers, aliases: Object.fromEntries([...this.#aliases].sort(([a], [b]) => (a < b ? -1 : 1))) };
  }

  /** The status of one version, or undefined. */
  get(name: string, version: string): ScorerStatus | undefined {
    const entry = this.#entries.get(scorerRef(name, version));
    return entry && this.#status(entry);
  }

  /** Alias -> "name@version". */
  aliases(): Map<string, string> {
    return new Map(this.#aliases);
  }

  /** Drains and unloads every version (server shutdown); aliases are dropped first. */
  async closeAll(drainTimeoutMs = 0): Promise<void> {
    this.#aliases.clear();
    const pending: Promise<unknown>[] = [];
    for (const entry of [...this.#entries.values()]) {
      if (entry.state === "LOADING") continue; // its load finishes on its own; nothing to drain
      pending.push(this.unload(entry.name, entry.version, drainTimeoutMs));
    }
    await Promise.allSettled(pending);
  }

  #aliasesOf(ref: string): string[] {
    return [...this.#aliases].filter(([, target]) => target === ref).map(([alias]) => alias);
  }

  #knownSuffix(): string {
    const refs = [...this.#entries.values()].filter((e) => e.state === "READY").map((e) => e.ref).sort();
    const aliases = [...this.#aliases.keys()].sort();
    return ` (ready: ${refs.join(", ") || "none"}; aliases: ${aliases.join(", ") || "none"})`;
  }

  #status(entry: Entry): ScorerStatus {
    return {
      name: entry.name,
      version: entry.version,
      kind: entry.kind,
      state: entry.state,
      loadedAtMs: entry.loadedAtMs,
      inFlight: entry.inFlight,
      batching: { ...entry.batching },
      needsPrompts: entry.needsPrompts,
      error: entry.error,
      bundlePath: entry.source.bundlePath ?? "",
      ...entry.stats.snapshot(),
    };
  }
}

function checkName(field: string, value: string): void {
  if (!NAME_PATTERN.test(value)) {
    throw new InvalidArgumentError(
      field,
      `${JSON.stringify(value)} is not a valid ${field}: use 1-128 characters from [A-Za-z0-9._-], ` +
        `starting with a letter or digit`,
    );
  }
}

function describeSource(source: ScorerSource): string {
  return source.bundlePath ? `bundle ${source.bundlePath}` : `built-in ${source.kind}`;
}

async function closeQuietly(scorer: Scorer, ref: string, log: LogFn): Promise<void> {
  try {
    await scorer.close();
  } catch (error) {
    log("warn", `closing ${ref} failed: ${messageOf(error)}`);
  }
}
