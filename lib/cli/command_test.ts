import { assert, assertEquals } from "../testing/assert.ts";
import { type CommandSpec, helpText, parseCommand, settingsLine } from "./command.ts";

const flags = {
  steps: { type: "int", env: ["X_STEPS"], default: 60, min: 1, description: "training steps" },
  adminToken: { type: "string", env: ["X_ADMIN_TOKEN"], description: "bearer token" },
  set: { type: "list", description: "key=value override" },
  quick: { type: "bool", default: false, description: "smoke run" },
  mode: { type: "string", choices: ["a", "b"], default: "a", description: "mode" },
} as const;

const spec: CommandSpec<typeof flags> = {
  name: "demo",
  summary: "a test command",
  flags,
  examples: ["deno task demo --steps 2"],
  run: () => {},
};

const noEnv = () => undefined;

Deno.test("command: --help / -h / --version exit 0 with the text on stdout", () => {
  for (const arg of ["--help", "-h"]) {
    const r = parseCommand(spec, ["--steps", "3", arg], noEnv);
    assertEquals(r.kind === "exit" && [r.code, r.stderr], [0, ""]);
    assertEquals(r.kind === "exit" && r.stdout, helpText(spec));
  }
  const help = helpText(spec);
  assert(help.startsWith("Usage: demo [flags]\n"), help);
  for (
    const line of [
      "--steps <int>",
      "(>= 1; default 60; env X_STEPS)",
      "--set <string>",
      "repeatable",
      "--quick",
    ]
  ) {
    assert(help.includes(line), line);
  }
  assert(help.includes("Examples:\n  deno task demo --steps 2\n  deno task rdpo demo --help"), help);
  const v = parseCommand(spec, ["--version"], noEnv);
  assert(v.kind === "exit" && v.code === 0 && /^rdpo \d+\.\d+\.\d+\n$/.test(v.stdout), JSON.stringify(v));
});

Deno.test("command: every problem is one line naming the flag, exit 2 (table)", () => {
  const table: [string[], string][] = [
    [["--stpes", "3"], "demo: --stpes: unknown flag; did you mean --steps?\n"],
    [["--zzz"], "demo: --zzz: unknown flag (known: --steps, --admin-token, --set, --quick, --mode)\n"],
    [["--steps"], "demo: --steps: missing value (<int>)\n"],
    [["--steps", "x"], 'demo: --steps: "x" is not a number (expected an integer >= 1)\n'],
    [["--steps", "0"], "demo: --steps: 0 is below the minimum 1\n"],
    [["--mode", "c"], 'demo: --mode: "c" is not one of a, b\n'],
    [["--quick=perhaps"], 'demo: --quick: "perhaps" is not a boolean (true/false)\n'],
    [["extra"], "demo: unexpected argument extra (flags start with --; see --help)\n"],
  ];
  for (const [args, stderr] of table) {
    const r = parseCommand(spec, args, noEnv);
    assertEquals(r.kind === "exit" && [r.code, r.stdout, r.stderr], [2, "", stderr], args.join(" "));
  }
  const fromEnv = parseCommand(spec, [], (n) => (n === "X_STEPS" ? "abc" : undefined));
  assertEquals(
    fromEnv.kind === "exit" && fromEnv.stderr.split("\n")[0],
    'demo: --steps (from env X_STEPS): "abc" is not a number (expected an integer >= 1)',
  );
});

Deno.test("command: values, sources and the settings line (secrets masked)", () => {
  const env = (n: string) => ({ X_STEPS: "7", X_ADMIN_TOKEN: "s3cret" } as Record<string, string>)[n];
  const r = parseCommand(spec, ["--set", "a.b=1", "--set=c=2", "--quick", "--mode", "b"], env);
  assert(r.kind === "run");
  assertEquals(r.values, { steps: 7, adminToken: "s3cret", set: ["a.b=1", "c=2"], quick: true, mode: "b" });
  assertEquals(r.sources.steps, "env X_STEPS");
  assertEquals(r.sources.set, "flag");
  const line = settingsLine(spec as unknown as CommandSpec, r.values, r.sources);
  assertEquals(
    line,
    "demo: steps=7 (env X_STEPS) admin-token=*** (env X_ADMIN_TOKEN) set=[a.b=1,c=2] (flag) quick=true (flag) mode=b (flag)",
  );
  const defaults = parseCommand(spec, ["--no-quick"], noEnv);
  assert(defaults.kind === "run");
  assertEquals(
    settingsLine(spec as unknown as CommandSpec, defaults.values, defaults.sources),
    "demo: steps=60 admin-token=- set=[] quick=false (flag) mode=a",
  );
});
