/**
 * A service (any script that prints `listening on HOST:PORT` via lib/rpc/main.ts) started as its own
 * Deno process, for load and crash tests: its address, whether and how it exited, and a bounded
 * stop (SIGTERM, then SIGKILL).
 */
import { fileURLToPath } from "node:url";

export interface SpawnedService {
  /** "127.0.0.1:PORT" it printed. */
  readonly address: string;
  readonly pid: number;
  /** Everything it wrote to stderr so far (the last 64 KiB). */
  stderr(): string;
  /** "code N" / "signal SIGSEGV" once the process has exited, else undefined. */
  exit(): string | undefined;
  /** Resolves with the exit description when the process exits. */
  readonly exited: Promise<string>;
  /** Waits up to `ms` for the process to exit; its exit description, or undefined if it lives. */
  exitedWithin(ms: number): Promise<string | undefined>;
  /** SIGTERM, up to `graceMs` for it to exit, then SIGKILL. Resolves with the exit description. */
  stop(graceMs?: number): Promise<string>;
}

const STDERR_KEEP = 64 * 1024;

function describe(status: Deno.CommandStatus): string {
  return status.signal ? `signal ${status.signal}` : `code ${status.code}`;
}

/**
 * Starts `deno run -A <script> ...args` (script relative to the repository root)
 * and resolves once it printed its `listening on` line; rejects (with its stderr) if it exits first
 * or does not listen within `startTimeoutMs`.
 */
export async function spawnService(
  script: string,
  args: string[],
  options: {
    startTimeoutMs?: number;
    env?: Record<string, string>;
    /** Working folder of the child (default this process'). */
    cwd?: string;
    /** Give the child a stdin pipe that closes when this process dies (the child can watch it). */
    lifeline?: boolean;
  } = {},
): Promise<SpawnedService> {
  const path = fileURLToPath(new URL(`../../${script}`, import.meta.url));
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", path, ...args],
    stdin: options.lifeline ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
    env: options.env,
    cwd: options.cwd,
  }).spawn();
  // Held open, never written: the child reads EOF when this process exits, however it exits.
  const lifeline = options.lifeline ? child.stdin.getWriter() : undefined;
  let err = "";
  let exited: string | undefined;
  const status = child.status.then((s) => {
    void lifeline?.close().catch(() => {});
    return (exited = describe(s));
  });
  void (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      err = (err + chunk).slice(-STDERR_KEEP);
    }
  })();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  const timeoutMs = options.startTimeoutMs ?? 120_000;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<"timeout">((r) => (timer = setTimeout(() => r("timeout"), timeoutMs)));
  try {
    while (!/listening on \S+\n/.test(out)) {
      const next = await Promise.race([reader.read(), timedOut]);
      if (next === "timeout") {
        child.kill("SIGKILL");
        throw new Error(`${script} did not listen within ${timeoutMs} ms; stderr: ${err.slice(-2000)}`);
      }
      if (next.done) {
        await status;
        throw new Error(`${script} exited (${exited}) before listening; stderr: ${err.slice(-2000)}`);
      }
      out += next.value;
    }
  } finally {
    clearTimeout(timer);
  }
  // Keep draining stdout so the child never blocks on a full pipe.
  void (async () => {
    while (!(await reader.read()).done) { /* discard */ }
  })();
  const address = /listening on (\S+)/.exec(out)![1];
  const waitExit = async (ms: number) => {
    let t: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([status, new Promise((r) => (t = setTimeout(r, ms)))]);
    clearTimeout(t);
    return exited;
  };
  return {
    address,
    pid: child.pid,
    stderr: () => err,
    exit: () => exited,
    exited: status,
    exitedWithin: waitExit,
    async stop(graceMs = 10_000) {
      if (exited) return exited;
      try {
        child.kill("SIGTERM");
      } catch { /* exited meanwhile */ }
      if (!(await waitExit(graceMs))) {
        try {
          child.kill("SIGKILL");
        } catch { /* exited meanwhile */ }
      }
      return await status;
    },
  };
}
