import { join } from "node:path";
import { parseCommand } from "../../lib/cli/command.ts";
import { assert, assertEquals } from "../../lib/testing/assert.ts";
import { documentedCommands } from "../../lib/testing/doc_commands.ts";
import { TRAIN_CLASSIFIER_COMMAND } from "./train_classifier.ts";

const SCRIPT = "tools/attributes/train_classifier.ts";

Deno.test("train_classifier: the flags keep the defaults the script had", () => {
  const r = parseCommand(TRAIN_CLASSIFIER_COMMAND, ["--out", "x"], () => undefined);
  assert(r.kind === "run");
  assertEquals(r.values, {
    arch: "a",
    seed: 1,
    steps: 1500,
    batch: 64,
    lr: 0.002,
    evalImages: 2000,
    out: "x",
    name: "prompt_fidelity",
    description: "log-probability of the prompted attributes",
    backend: "wasm",
    plotOnly: false,
  });
  const bad = parseCommand(TRAIN_CLASSIFIER_COMMAND, ["--out", "x", "--eval-images", "0"], () => undefined);
  assert(bad.kind === "exit" && bad.code === 2 && bad.stderr.includes("--eval-images"), JSON.stringify(bad));
});

Deno.test("train_classifier: the bundles' README commands and the examples parse", async () => {
  const lines = [
    ...await documentedCommands("models/prompt_fidelity/README.md", SCRIPT),
    ...await documentedCommands("models/attribute_evaluator/README.md", SCRIPT),
  ];
  assertEquals(lines.length, 2);
  for (const example of TRAIN_CLASSIFIER_COMMAND.examples) {
    lines.push(example.slice(example.indexOf(SCRIPT) + SCRIPT.length).trim().split(/\s+/));
  }
  for (const args of lines) {
    const r = parseCommand(TRAIN_CLASSIFIER_COMMAND, args, () => undefined);
    assert(r.kind === "run", `${args.join(" ")}: ${JSON.stringify(r)}`);
    assert(r.values.out.startsWith("models/"), args.join(" "));
  }
});

Deno.test("train_classifier: --plot-only redraws loss.svg from loss.csv and trains nothing", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const rows = Array.from({ length: 60 }, (_, i) => `${i + 1},${(3 / (i + 1)).toFixed(4)}`);
    await Deno.writeTextFile(join(dir, "loss.csv"), `step,loss\n${rows.join("\n")}\n`);
    const r = parseCommand(
      TRAIN_CLASSIFIER_COMMAND,
      ["--plot-only", "--out", dir, "--name", "t"],
      () => undefined,
    );
    assert(r.kind === "run");
    await TRAIN_CLASSIFIER_COMMAND.run(r.values, r.positionals, []);
    const svg = await Deno.readTextFile(join(dir, "loss.svg"));
    assert(svg.includes("<svg") && svg.includes("t: training loss"), svg.slice(0, 200));
    const files = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
    assertEquals(files, ["loss.csv", "loss.svg"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
