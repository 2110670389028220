/**
 * Optional polling of a model repository (Triton's "poll" model-control mode with the "latest"
 * version policy). Layout: `<root>/<name>/<version>/manifest.json`, one bundle per version folder.
 *
 * On every poll, for each `<name>` folder the poller serves the LATEST version folder, ordered by
 * natural sort (so "10" > "9" and "v10" > "v9"; use sortable version names such as numbers or
 * dates). When the latest folder differs from the version the poller serves for that name, it
 * loads it beside the old one (warm-up included), moves the alias `<name>` to it (unless
 * `moveAlias` is false), then unloads the old version after its requests drain. A version folder
 * that is removed makes the previous one the latest again (a rollback); when no folder is left,
 * the alias is deleted and the version unloaded. Versions loaded by hand (LoadScorer) are never
 * unloaded by the poller unless it adopted them as the latest of their name.
 *
 * A failed load is logged and not retried until its manifest.json changes (mtime or size); the
 * serving version stays. Every error is logged; the poller never throws out of its timer.
 */
import { join } from "node:path";
import type { BatchingConfig } from "./batcher.ts";
import { resolveBundlePath } from "./paths.ts";
import { type LogFn, scorerRef, type ScorerRegistry } from "./registry.ts";

export interface RepositoryPollerOptions {
  registry: ScorerRegistry;
  /** The model root, polled as `<root>/<name>/<version>/manifest.json`. */
  root: string;
  intervalMs: number;
  /** Point alias `<name>` at each newly loaded version (default true). */
  moveAlias?: boolean;
  /** Unload the version a new one replaced, after draining (default true). */
  unloadReplaced?: boolean;
  drainTimeoutMs?: number;
  batching?: Partial<BatchingConfig>;
  log?: LogFn;
}

/** What one poll did (for logs and tests). */
export interface PollReport {
  loaded: string[];
  unloaded: string[];
  failed: string[];
}

const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const naturalOrder = new Intl.Collator("en", { numeric: true }).compare;

export class ModelRepositoryPoller {
  readonly #options: RepositoryPollerOptions;
  readonly #log: LogFn;
  /** name -> the version the poller serves for it. */
  readonly #serving = new Map<string, string>();
  /** name@version -> manifest signature of a failed load (not retried while unchanged). */
  readonly #failed = new Map<string, string>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #running: Promise<PollReport> | undefined;
  #stopped = true;

  constructor(options: RepositoryPollerOptions) {
    this.#options = options;
    this.#log = options.log ?? ((_level, message) => console.error(`[reward] ${message}`));
  }

  /** Versions the poller serves, name -> version. */
  get serving(): ReadonlyMap<string, string> {
    return this.#serving;
  }

  /** Polls now, then every intervalMs until stop(). */
  start(): void {
    if (!this.#stopped) return;
    this.#stopped = false;
    const tick = async () => {
      await this.pollOnce();
      if (!this.#stopped) this.#timer = setTimeout(tick, this.#options.intervalMs);
    };
    this.#timer = setTimeout(tick, 0);
  }

  /** Stops polling and waits for a poll in progress. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#running;
  }

  /** One pass over the repository. Never throws: errors are logged and reported as failed. */
  pollOnce(): Promise<PollReport> {
    if (this.#running) return this.#running;
    this.#running = this.#poll().finally(() => (this.#running = undefined));
    return this.#running;
  }

  async #poll(): Promise<PollReport> {
    const report: PollReport = { loaded: [], unloaded: [], failed: [] };
    let names: Map<string, string[]>;
    try {
      names = await this.#scan();
    } catch (error) {
      this.#log("error", `repository ${this.#options.root}: cannot scan: ${messageOf(error)}`);
      return report;
    }
    const failedNames = [...this.#failed.keys()].map((ref) => ref.split("@")[0]);
    for (const name of new Set([...names.keys(), ...this.#serving.keys(), ...failedNames])) {
      try {
        await this.#converge(name, names.get(name) ?? [], report);
      } catch (error) {
        this.#log("error", `repository: ${name}: ${messageOf(error)}`);
      }
    }
    return report;
  }

  /** name -> version folders holding a manifest.json, ascending in natural order. */
  async #scan(): Promise<Map<string, string[]>> {
    const out = new Map<string, string[]>();
    for await (const nameEntry of Deno.readDir(this.#options.root)) {
      if (!NAME_PATTERN.test(nameEntry.name)) continue;
      const versions: string[] = [];
      try {
        for await (const v of Deno.readDir(join(this.#options.root, nameEntry.name))) {
          if (!NAME_PATTERN.test(v.name)) continue;
          const manifest = join(this.#options.root, nameEntry.name, v.name, "manifest.json");
          if (await isFile(manifest)) versions.push(v.name);
        }
      } catch {
        continue; // not a folder
      }
      if (versions.length > 0) out.set(nameEntry.name, versions.sort(naturalOrder));
    }
    return out;
  }

  async #converge(name: string, versions: string[], report: PollReport): Promise<void> {
    const { registry } = this.#options;
    await this.#forgetRemovedFailures(name, versions);
    const current = this.#serving.get(name);
    const latest = versions.at(-1);
    if (latest === current) return;
    if (latest === undefined) {
      // Every version folder is gone: stop serving the name.
      const ref = scorerRef(name, current!);
      if (registry.aliases().get(name) === ref) registry.setAlias(name, "", "");
      this.#serving.delete(name);
      await this.#unload(name, current!, report);
      return;
    }
    const ref = scorerRef(name, latest);
    const signature = await manifestSignature(join(this.#options.root, name, latest, "manifest.json"));
    if (this.#failed.get(ref) === signature) return;
    const existing = registry.get(name, latest);
    const moveAlias = this.#options.moveAlias ?? true;
    if (existing?.state === "READY") {
      // Loaded by hand already: adopt it.
      if (moveAlias) registry.setAlias(name, name, latest);
    } else {
      try {
        const bundlePath = await resolveBundlePath(this.#options.root, `${name}/${latest}`);
        await registry.load(
          name,
          latest,
          { kind: "", bundlePath },
          this.#options.batching,
          moveAlias ? name : undefined,
        );
        this.#failed.delete(ref);
        report.loaded.push(ref);
        this.#log("info", `repository: loaded ${ref}${moveAlias ? `, alias ${name} -> ${ref}` : ""}`);
      } catch (error) {
        this.#failed.set(ref, signature);
        report.failed.push(ref);
        this.#log(
          "error",
          `repository: loading ${ref} failed (kept serving ${current ?? "nothing"}): ${messageOf(error)}`,
        );
        return;
      }
    }
    this.#serving.set(name, latest);
    if (current !== undefined && (this.#options.unloadReplaced ?? true)) {
      await this.#unload(name, current, report);
    }
  }

  /** Drops FAILED entries (and their retry marks) whose version folder is gone. */
  async #forgetRemovedFailures(name: string, versions: string[]): Promise<void> {
    for (const ref of [...this.#failed.keys()]) {
      const [refName, version] = ref.split("@");
      if (refName !== name || versions.includes(version)) continue;
      this.#failed.delete(ref);
      if (this.#options.registry.get(name, version)?.state === "FAILED") {
        await this.#options.registry.unload(name, version);
      }
    }
  }

  async #unload(name: string, version: string, report: PollReport): Promise<void> {
    const ref = scorerRef(name, version);
    if (!this.#options.registry.get(name, version)) return;
    try {
      await this.#options.registry.unload(name, version, this.#options.drainTimeoutMs ?? 0);
      report.unloaded.push(ref);
      this.#log("info", `repository: unloaded ${ref}`);
    } catch (error) {
      this.#log("error", `repository: unloading ${ref} failed: ${messageOf(error)}`);
    }
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}

async function manifestSignature(path: string): Promise<string> {
  try {
    const info = await Deno.stat(path);
    return `${info.mtime?.getTime() ?? 0}:${info.size}`;
  } catch {
    return "missing";
  }
}
