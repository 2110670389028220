import { parseCommand } from "../../lib/cli/command.ts";
import { assert, assertAlmostEquals, assertEquals } from "../../lib/testing/assert.ts";
import { documentedCommands } from "../../lib/testing/doc_commands.ts";
import { spearman, STEP_SIGNAL_COMMAND } from "./run.ts";

Deno.test("spearman: monotone is 1, reversed is -1, ties take average ranks", () => {
  assertAlmostEquals(spearman([1, 2, 3, 4], [10, 20, 25, 100]), 1, 1e-12);
  assertAlmostEquals(spearman([1, 2, 3, 4], [4, 3, 2, 1]), -1, 1e-12);
  // Ranks a = [0, 1.5, 1.5, 3], b = [0, 1, 2, 3]: Pearson of the ranks.
  assertAlmostEquals(spearman([1, 2, 2, 3], [1, 2, 3, 4]), 0.9486832980505138, 1e-12);
  assertEquals(Number.isNaN(spearman([1, 1, 1], [1, 2, 3])), true);
});

Deno.test("step signal: the README's commands and the examples parse", async () => {
  const script = "experiments/step_signal/run.ts";
  const lines = await documentedCommands("experiments/step_signal/README.md", script);
  assert(lines.length >= 1, "the README shows the command behind its table");
  for (const example of STEP_SIGNAL_COMMAND.examples) {
    lines.push(example.slice(example.indexOf(script) + script.length).trim().split(/\s+/));
  }
  for (const args of lines) {
    const r = parseCommand(STEP_SIGNAL_COMMAND, args, () => undefined);
    if (args.includes("--help")) assert(r.kind === "exit" && r.code === 0, JSON.stringify(r));
    else assert(r.kind === "run", `${args.join(" ")}: ${JSON.stringify(r)}`);
  }
});
