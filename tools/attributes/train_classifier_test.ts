import { join } from "node:path";
import { parseCommand } from "../../lib/cli/command.ts";
import { assert, assertEquals } from "../../lib/testing/assert.ts";
import { documentedCommands } from "../../lib/testing/doc_commands.ts";
import { TRAIN_CLASSIFIER_COMMAND, visibilityOf } from "./train_classifier.ts";
import { ATTRIBUTE_HEADS } from "./heads.ts";
import { sampleSpec } from "../shapes/dataset.ts";

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
    renderer: "default",
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

Deno.test("train_classifier: a share of the images shows no visible object, labelled count none", () => {
  const kinds = { shown: 0, none: 0, ambiguous: 0 };
  for (let i = 0; i < 4000; i++) {
    const v = visibilityOf(7001, i, sampleSpec(7001, i).size === "small");
    assertEquals(
      v,
      visibilityOf(7001, i, sampleSpec(7001, i).size === "small"),
      "a pure function of the index",
    );
    kinds[v.visibility]++;
    if (v.visibility === "shown") assert((v.render.opacity ?? 1) >= 0.55 && (v.render.scale ?? 1) === 1);
    if (v.render.opacity === 0) assertEquals(v.visibility, "none");
  }
  // 9 % empty + part of 9 % faded + part of 4 % shrunk: between 10 % and 22 % none.
  assert(kinds.none > 400 && kinds.none < 880, JSON.stringify(kinds));
  assert(kinds.ambiguous > 0 && kinds.shown > 3000, JSON.stringify(kinds));
});

Deno.test("attribute heads: a scene without a visible object labels count none and masks the object heads", () => {
  const spec = sampleSpec(7001, 3);
  const byName = Object.fromEntries(ATTRIBUTE_HEADS.map((h) => [h.name, h]));
  const count = byName.count;
  assertEquals(count.label(spec, "none"), count.classes.indexOf("none"));
  assertEquals(count.label(spec, "ambiguous"), -1);
  assertEquals(count.label(spec, "shown"), spec.count - 1);
  for (const name of ["shape", "color", "size", "position"]) {
    assertEquals(byName[name].label(spec, "none"), -1);
  }
  // The background is still what the image shows.
  assertEquals(byName.background.label(spec, "none"), byName.background.label(spec));
  // "none" is never what a prompt asks for.
  assert(
    !new RegExp(count.patterns[count.classes.indexOf("none")]).test("a red circle on a blue background"),
  );
});
