import { parseCommand } from "../../lib/cli/command.ts";
import { FlagError } from "../../lib/rpc/flags.ts";
import { assert, assertEquals, assertThrows } from "../../lib/testing/assert.ts";
import { documentedCommands } from "../../lib/testing/doc_commands.ts";
import {
  METHOD_COMPARISON_COMMAND,
  METHODS,
  onStopSignals,
  parseMethods,
  parseSeeds,
  parseStructures,
  runDirName,
  runLabel,
} from "./run.ts";

const SCRIPT = "experiments/method_comparison/run.ts";

Deno.test("method comparison: the flags keep the defaults the script had", () => {
  const r = parseCommand(METHOD_COMPARISON_COMMAND, [], () => undefined);
  assert(r.kind === "run");
  assertEquals(r.values, {
    seeds: "1,2,3",
    methods: "d3po,tailorpo,rdpo_star,rdpo,rdpo_lambda_beta",
    structures: "epoch",
    steps: undefined,
    out: "runs/method_comparison",
    collect: false,
  });
  assertEquals(parseSeeds(r.values.seeds), [1, 2, 3]);
  assertEquals(parseMethods(r.values.methods), [...METHODS]);
});

Deno.test("method comparison: --seeds and --methods are checked, naming the flag", () => {
  assertEquals(parseSeeds(" 4, 5 "), [4, 5]);
  assertEquals(parseMethods("rdpo,d3po"), ["rdpo", "d3po"]);
  assertThrows(() => parseSeeds("1,,2"), FlagError, "--seeds");
  assertThrows(() => parseSeeds("1.5"), FlagError, "--seeds");
  assertThrows(() => parseMethods("d3po,dpo"), FlagError, `--methods: "dpo"`);
  assertEquals(parseStructures("epoch, per_batch"), ["epoch", "per_batch"]);
  assertThrows(() => parseStructures("epoch,on_policy"), FlagError, `--structures: "on_policy"`);
  const steps = parseCommand(METHOD_COMPARISON_COMMAND, ["--steps", "0"], () => undefined);
  assert(
    steps.kind === "exit" && steps.code === 2 && steps.stderr.includes("--steps"),
    JSON.stringify(steps),
  );
});

Deno.test("method comparison: the README's and RESULTS.md's commands and the examples parse", async () => {
  const readme = await documentedCommands("experiments/method_comparison/README.md", SCRIPT);
  const results = await documentedCommands("experiments/method_comparison/RESULTS.md", SCRIPT);
  // Each document shows at least the command that made (or makes) the committed results.
  assert(readme.length >= 1 && results.length >= 1, `${readme.length} / ${results.length}`);
  const lines = [...readme, ...results];
  for (const example of METHOD_COMPARISON_COMMAND.examples) {
    lines.push(example.slice(example.indexOf(SCRIPT) + SCRIPT.length).trim().split(/\s+/));
  }
  for (const args of lines) {
    const r = parseCommand(METHOD_COMPARISON_COMMAND, args, () => undefined);
    if (args.includes("--help")) {
      assert(r.kind === "exit" && r.code === 0 && r.stdout.includes("--collect"), JSON.stringify(r));
      continue;
    }
    assert(r.kind === "run", `${args.join(" ")}: ${JSON.stringify(r)}`);
    parseSeeds(r.values.seeds);
    parseMethods(r.values.methods);
  }
});

Deno.test("method comparison: on-policy runs get their own folder and label; epoch runs keep the old ones", () => {
  assertEquals(runDirName("rdpo", "epoch", 2), "rdpo-seed-2");
  assertEquals(runDirName("rdpo", "per_batch", 2), "rdpo-per_batch-seed-2");
  assertEquals(runLabel("d3po", "epoch"), "d3po");
  assertEquals(runLabel("d3po", "per_batch"), "d3po (on-policy)");
});

Deno.test("method comparison: a first SIGTERM aborts the runs, a second one stops hard", async () => {
  const controller = new AbortController();
  let hard = 0;
  const remove = onStopSignals(controller, () => hard++);
  // Signals arrive asynchronously: wait (bounded) until the handler ran.
  const until = async (done: () => boolean) => {
    for (let i = 0; i < 200 && !done(); i++) await new Promise((r) => setTimeout(r, 25));
  };
  try {
    Deno.kill(Deno.pid, "SIGTERM");
    await until(() => controller.signal.aborted);
    assert(controller.signal.aborted);
    assertEquals(hard, 0);
    Deno.kill(Deno.pid, "SIGTERM");
    await until(() => hard > 0);
    assertEquals(hard, 1);
  } finally {
    remove();
  }
});
