/**
 * Runs a service's main.ts as a child process on loopback (cross-service tests, the demo): waits for its
 * `listening on HOST:PORT` line, and can kill it (SIGKILL, no drain) and start it again on the same
 * port, as a crashed and restarted deployment would.
 */
import { join } from "node:path";
import { repoRoot } from "../testing/fixtures.ts";

export class ServiceProcess {
  #child: Deno.ChildProcess | null = null;
  address = "";
  #stderr: Promise<string> = Promise.resolve("");

  /** `options.env`: extra environment variables of the child (e.g. OTEL_DENO=true for tracing). */
  constructor(
    readonly main: string,
    readonly args: string[],
    readonly options: { env?: Record<string, string> } = {},
  ) {}

  /** Starts the process (on `port`, default a free one) and waits until it listens. */
  async start(port = 0, timeoutMs = 60_000): Promise<string> {
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        join(repoRoot, this.main),
        ...this.args,
        "--host",
        "127.0.0.1",
        "--port",
        String(port),
      ],
      stdout: "piped",
      stderr: "piped",
      stdin: "null",
      env: this.options.env,
    }).spawn();
    this.#child = child;
    this.#stderr = new Response(child.stderr).text().catch(() => "");
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let out = "";
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    try {
      while (!out.includes("\n")) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`${this.main} exited before listening: ${await this.#stderr}`);
        out += value;
      }
    } finally {
      clearTimeout(timer);
    }
    const m = out.match(/listening on (\S+:\d+)/);
    if (!m) throw new Error(`${this.main}: unexpected first line ${JSON.stringify(out)}`);
    this.address = m[1];
    // Keep draining stdout so the child never blocks on a full pipe.
    (async () => {
      try {
        while (!(await reader.read()).done) { /* discard */ }
      } catch { /* closed */ }
    })();
    return this.address;
  }

  get port(): number {
    return Number(this.address.split(":").pop());
  }

  /** SIGKILL: no drain, in-flight calls fail as after a crash. */
  async kill(): Promise<void> {
    if (!this.#child) return;
    try {
      this.#child.kill("SIGKILL");
    } catch { /* already gone */ }
    await this.#child.status;
    await this.#stderr;
    this.#child = null;
  }

  /** Sends `signal` (e.g. SIGHUP: reload certificates and tokens) to the running process. */
  signal(signal: Deno.Signal): void {
    this.#child?.kill(signal);
  }

  /** What the process wrote to stderr (resolves once it exited). */
  get stderr(): Promise<string> {
    return this.#stderr;
  }

  /** Graceful stop (SIGTERM); returns the exit code. */
  async stop(): Promise<number> {
    if (!this.#child) return 0;
    this.#child.kill("SIGTERM");
    const status = await this.#child.status;
    await this.#stderr;
    this.#child = null;
    return status.code;
  }

  /** Kill, then start again on the same port. */
  async restart(delayMs = 0): Promise<void> {
    const port = this.port;
    await this.kill();
    if (delayMs) await new Promise((r) => setTimeout(r, delayMs));
    await this.start(port);
  }
}
