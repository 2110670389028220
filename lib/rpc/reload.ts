/**
 * Reloading of secret files (TLS certificates and keys, token tables) without a restart: on SIGHUP
 * and when their content changes. cert-manager and the kubelet rotate a mounted Secret by swapping
 * a `..data` symlink, which file-system events report unreliably (the watched inode never
 * changes), so changes are found by polling a content digest; SIGHUP forces a reload at once.
 *
 * The loader validates what it reads; when it throws, the previous material stays in use and the
 * problem is reported (a half-written rotation must not take a serving process down).
 */
import { createHash } from "node:crypto";

export interface ReloadingOptions<T> {
  /** Files whose content decides the value (a change in any of them triggers a reload). */
  files: readonly string[];
  /** Reads (synchronously: they are small) and validates the files; throws when they are unusable. */
  load: () => T;
  /** Receives each new value after a successful reload (not the first load). */
  onReload?: (value: T) => void;
  /** Receives each failed reload; the previous value stays in use. */
  onError?: (error: unknown) => void;
  /** Poll period in ms; 0: reload only on SIGHUP or reload(). Default 5000. */
  intervalMs?: number;
  /** Reload on SIGHUP (default true; ignored where the platform has no SIGHUP). */
  sighup?: boolean;
}

/** A value loaded from files, kept current while open. */
export interface Reloading<T> {
  /** The latest good value. */
  readonly current: T;
  /** How many times a changed file set was loaded successfully after the first load. */
  readonly reloads: number;
  /** Reloads now (as SIGHUP does); true when the value was replaced. */
  reload(): boolean;
  /** Stops polling and listening for SIGHUP. */
  close(): void;
}

/** SHA-256 over every file's bytes (and its name), or the error text when one cannot be read. */
function digestOf(files: readonly string[]): string {
  const hash = createHash("sha256");
  for (const file of files) {
    hash.update(file).update("\0");
    try {
      hash.update(Deno.readFileSync(file));
    } catch (e) {
      hash.update(`unreadable: ${(e as Error).name}`);
    }
    hash.update("\0");
  }
  return hash.digest("hex");
}

/** Loads once (throwing when the first load fails), then keeps the value current. */
export function followFiles<T>(options: ReloadingOptions<T>): Reloading<T> {
  let digest = digestOf(options.files);
  let current = options.load();
  let reloads = 0;
  let closed = false;

  const reloadIfChanged = (force: boolean): boolean => {
    const next = digestOf(options.files);
    if (!force && next === digest) return false;
    try {
      const value = options.load();
      digest = next;
      current = value;
      reloads++;
      options.onReload?.(value);
      return true;
    } catch (e) {
      // Remember the bad content so it is reported once, not on every poll.
      digest = next;
      options.onError?.(e);
      return false;
    }
  };
  const reload = (force: boolean): boolean => !closed && reloadIfChanged(force);

  const intervalMs = options.intervalMs ?? 5000;
  const timer = intervalMs > 0 ? setInterval(() => reload(false), intervalMs) : undefined;
  // The poll must not keep a process (a test, a CLI) alive on its own.
  if (timer !== undefined) Deno.unrefTimer(timer);
  const onHup = () => void reload(true);
  let hup = false;
  if ((options.sighup ?? true) && Deno.build.os !== "windows") {
    Deno.addSignalListener("SIGHUP", onHup);
    hup = true;
  }
  return {
    get current() {
      return current;
    },
    get reloads() {
      return reloads;
    },
    reload: () => reload(true),
    close() {
      closed = true;
      clearInterval(timer);
      if (hup) Deno.removeSignalListener("SIGHUP", onHup);
      hup = false;
    },
  };
}
