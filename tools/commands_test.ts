/**
 * Issue 16's convention, as a user meets it: every command (each deno task and `rdpo`) answers
 * --help with usage and exit 0, an unknown flag with exactly one line and exit 2, never a stack
 * trace; and `deno task serve:policy` with no flags serves the embedded model and answers health.
 */
import { Health } from "../gen/grpc/health/v1/health_pb.ts";
import { createClient } from "../lib/rpc/client.ts";
import { assert, assertEquals } from "../lib/testing/assert.ts";
import { repoRoot } from "../lib/testing/fixtures.ts";
import denoConfig from "../deno.json" with { type: "json" };
import { COMMANDS, INTERNAL, SCRIPTS } from "./commands.ts";

const STACK = /^\s+at .+:\d+:\d+\)?$/m;
const BANNER = /looks like you are running TensorFlow\.js/;

async function run(args: string[], env: Record<string, string> = {}) {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", ...args],
    cwd: repoRoot,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  // Deno's own note while another deno process holds node_modules' lock (parallel tests) is not ours.
  const stderr = new TextDecoder().decode(r.stderr).replace(/^Blocking waiting for file lock on .*\n/gm, "");
  return { code: r.code, stdout: new TextDecoder().decode(r.stdout), stderr };
}

/** Runs `jobs` two at a time (the machine has two cores). */
async function pooled<T>(jobs: (() => Promise<T>)[], width = 2): Promise<T[]> {
  const results: T[] = new Array(jobs.length);
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < jobs.length) {
      const i = next++;
      results[i] = await jobs[i]();
    }
  }));
  return results;
}

Deno.test("commands: every deno task alias runs the entry point the command list names", () => {
  const tasks = denoConfig.tasks as Record<string, string>;
  for (const c of COMMANDS) {
    assertEquals(tasks[c.name], ["deno run -A", c.script, ...c.scriptArgs].join(" "), c.name);
  }
  assertEquals(tasks.rdpo, "deno run -A tools/rdpo.ts");
});

Deno.test({
  name:
    "commands: --help exits 0 with usage, an unknown flag exits 2 with one line (every command, script, child)",
  sanitizeResources: false,
  async fn() {
    // Each spawn loads a whole entry point (tfjs, ONNX Runtime): the rdpo and -h spellings are
    // checked for three commands (`rdpo serve policy`, `rdpo gen:wasm`), the direct scripts for all.
    const rdpoArgs = (name: string) => name.startsWith("serve:") ? name.split(":") : [name];
    const lines = [...COMMANDS, ...SCRIPTS, ...INTERNAL].flatMap((c) => [
      { c, kind: "help", args: [c.script, ...c.scriptArgs, "--help"] },
      { c, kind: "unknown", args: [c.script, ...c.scriptArgs, "--no-such-flag", "1"] },
      ...(["train", "serve:policy", "gen:wasm"].includes(c.name)
        ? [{ c, kind: "-h", args: ["tools/rdpo.ts", ...rdpoArgs(c.name), "-h"] }]
        : []),
    ]);
    const results = await pooled(lines.map((l) => () => run(l.args)));
    lines.forEach(({ c, kind }, i) => {
      const r = results[i];
      const what = `${c.name} ${kind}: code ${r.code}\n${r.stdout}\n${r.stderr}`;
      assert(!STACK.test(r.stdout + r.stderr), `stack trace in ${what}`);
      assert(!BANNER.test(r.stdout + r.stderr), `tfjs banner in ${what}`);
      if (kind === "unknown") {
        assertEquals(r.code, 2, what);
        assertEquals(r.stdout, "", what);
        const err = r.stderr.trimEnd().split("\n");
        assertEquals(err.length, 1, what);
        assert(err[0].startsWith(`${c.name}: --no-such-flag: unknown flag`), what);
      } else {
        assertEquals(r.code, 0, what);
        assert(r.stdout.startsWith(`Usage: ${c.name} [flags]`), what);
        assert(r.stdout.includes("Examples:\n"), what);
        assert(r.stdout.includes("-h, --help"), what);
      }
    });
  },
});

Deno.test({
  name: "commands: rdpo lists the commands, suggests close names, and bad values name the flag",
  sanitizeResources: false,
  async fn() {
    const [help, typo, serveTypo, version, badValue, close] = await pooled([
      () => run(["tools/rdpo.ts", "--help"]),
      () => run(["tools/rdpo.ts", "trian"]),
      () => run(["tools/rdpo.ts", "serve", "polcy"]),
      () => run(["tools/rdpo.ts", "--version"]),
      () => run(["tools/rdpo.ts", "serve", "policy", "--port", "70000"]),
      () => run(["services/policy/main.ts", "--prot", "0"]),
    ]);
    assertEquals(help.code, 0, help.stderr);
    for (const c of COMMANDS) {
      const service = c.name.startsWith("serve:") ? c.name.slice("serve:".length) : undefined;
      assert(help.stdout.includes(`\n  ${service ? "serve" : c.name} `), c.name);
      if (service) {
        assert(new RegExp(`serve .*run a gRPC service: .*\\b${service}\\b`).test(help.stdout), c.name);
      }
    }
    assertEquals([typo.code, typo.stderr], [2, "rdpo: unknown command 'trian' (Did you mean train?)\n"]);
    assertEquals(serveTypo.code, 2);
    assert(serveTypo.stderr.includes("Did you mean policy?"), serveTypo.stderr);
    assertEquals([version.code, version.stdout], [0, `rdpo ${denoConfig.version}\n`]);
    assertEquals(
      [badValue.code, badValue.stderr],
      [2, "serve:policy: --port: 70000 is above the maximum 65535\n"],
    );
    assertEquals([close.code, close.stderr], [
      2,
      "serve:policy: --prot: unknown flag; did you mean --port?\n",
    ]);
  },
});

Deno.test({
  name: "commands: `deno task serve:policy` with no flags serves models/tiny and answers health",
  sanitizeResources: false,
  async fn() {
    const task = (denoConfig.tasks as Record<string, string>)["serve:policy"].split(" ");
    assertEquals(task.slice(0, 3), ["deno", "run", "-A"]);
    // No flags; the port comes from the environment so parallel tests never collide on 50052.
    const child = new Deno.Command(Deno.execPath(), {
      args: task.slice(1),
      cwd: repoRoot,
      env: { POLICY_PORT: "0" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const stderr = new Response(child.stderr).text();
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let out = "";
    const timer = setTimeout(() => child.kill("SIGKILL"), 120_000);
    try {
      while (!out.includes("\n")) {
        const { value, done } = await reader.read();
        if (done) break;
        out += value;
      }
      const address = /^listening on (\S+:\d+)\n/.exec(out)?.[1];
      assert(address, `no listening line: ${out}`);
      const health = createClient(Health, address);
      try {
        const status = await health.check({ service: "rdpo.v1.PolicyService" }, { timeoutMs: 30_000 });
        assertEquals(status.status, 1, "SERVING");
      } finally {
        health.close();
      }
    } finally {
      child.kill("SIGTERM");
      clearTimeout(timer);
      await reader.cancel().catch(() => {});
    }
    assertEquals((await child.status).code, 0);
    const err = await stderr;
    assert(!BANNER.test(err), err);
    // The settings line: every default in one line, the model folder among them.
    const settings = err.split("\n").find((l) => l.startsWith("serve:policy: "));
    assert(settings !== undefined && settings.includes(" model-dir=models/tiny "), err);
    assert(settings.includes(" port=0 (env POLICY_PORT) "), err);
  },
});
