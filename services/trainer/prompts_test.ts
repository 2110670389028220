import {
  assert,
  assertEquals,
  assertNotEquals,
  assertRejects,
  assertThrows,
} from "../../lib/testing/assert.ts";
import { InvalidArgumentError } from "../../lib/errors.ts";
import {
  detectPromptFormat,
  loadPromptFile,
  loadPromptSets,
  parsePrompts,
  PromptBatcher,
  splitPrompts,
} from "./prompts.ts";

const HERE = new URL(".", import.meta.url).pathname;
const letters = "abcdefghijklmnopq".split("");

Deno.test("prompts: lines format skips blank lines and # comments and trims", () => {
  assertEquals(parsePrompts("# header\n\n  a cat  \n#x\r\na dog\n\n", "lines"), ["a cat", "a dog"]);
  assertThrows(
    () => parsePrompts("# only comments\n\n", "lines", "p.txt"),
    InvalidArgumentError,
    "p.txt: holds no prompts",
  );
});

Deno.test("prompts: jsonl format reads the prompt field and names the bad line", () => {
  assertEquals(parsePrompts(`{"prompt": "a"}\n\n{"prompt": "b", "tag": 1}\n`, "jsonl"), ["a", "b"]);
  assertThrows(
    () => parsePrompts(`{"prompt": "a"}\n{oops}`, "jsonl", "f.jsonl"),
    InvalidArgumentError,
    "f.jsonl:2: not valid JSON",
  );
  assertThrows(
    () => parsePrompts(`{"text": "a"}`, "jsonl", "f.jsonl"),
    InvalidArgumentError,
    `f.jsonl:1: expected an object with a string field "prompt"`,
  );
  assertThrows(() => parsePrompts(`["a"]`, "jsonl", "f.jsonl"), InvalidArgumentError, "f.jsonl:1");
  assertThrows(
    () => parsePrompts(`{"prompt": " "}`, "jsonl", "f.jsonl"),
    InvalidArgumentError,
    "f.jsonl:1.prompt: is empty",
  );
});

Deno.test("prompts: format detection by extension", () => {
  assertEquals(detectPromptFormat("x/p.jsonl"), "jsonl");
  assertEquals(detectPromptFormat("x/p.NDJSON"), "jsonl");
  assertEquals(detectPromptFormat("x/p.txt"), "lines");
  assertEquals(detectPromptFormat("x/p.jsonl", "lines"), "lines");
});

Deno.test("prompts: the shipped files load (45 distinct animals, free-form scenes)", async () => {
  const animals = await loadPromptFile("prompts/animals.txt", "auto", HERE);
  assertEquals(animals.length, 45);
  assertEquals(new Set(animals).size, 45);
  assert(animals.every((a) => /^[a-z]+$/.test(a)), animals.join(","));
  const scenes = await loadPromptFile("prompts/scenes.jsonl", "auto", HERE);
  assert(scenes.length >= 10);
  await assertRejects(
    () => loadPromptFile("prompts/missing.txt", "auto", HERE),
    InvalidArgumentError,
    "prompts.file",
  );
});

Deno.test("prompts: seeded split is deterministic, disjoint, complete, in file order", () => {
  const a = splitPrompts(letters, 0.25, 7);
  assertEquals(a, splitPrompts(letters, 0.25, 7));
  assertEquals(a.eval.length, Math.round(letters.length * 0.25));
  assertEquals([...a.train, ...a.eval].sort(), letters);
  assertEquals(a.train.filter((p) => a.eval.includes(p)), []);
  assertEquals(a.train, letters.filter((p) => a.train.includes(p)));
  assertNotEquals(splitPrompts(letters, 0.25, 8).eval, a.eval);
  // Tiny fractions still hold out one prompt; never all of them.
  assertEquals(splitPrompts(letters, 0.001, 1).eval.length, 1);
  assertEquals(splitPrompts(["x", "y"], 0.99, 1).train.length, 1);
  // Fraction 0: evaluate on the training prompts.
  assertEquals(splitPrompts(letters, 0, 1), { train: letters, eval: letters });
  assertThrows(() => splitPrompts(["x"], 0.5, 1), InvalidArgumentError, "prompts.eval_fraction");
  assertThrows(() => splitPrompts(letters, 1, 1), InvalidArgumentError, "prompts.eval_fraction");
});

Deno.test("prompts: loadPromptSets uses the eval file or the split", async () => {
  const base = { file: "prompts/animals.txt", format: "auto" as const, eval_fraction: 0, shuffle_seed: 0 };
  const withFile = await loadPromptSets({ ...base, eval_file: "prompts/scenes.jsonl" }, HERE);
  assertEquals(withFile.train.length, 45);
  assert(withFile.eval[0].includes(" "));
  const split = await loadPromptSets({ ...base, eval_file: null, eval_fraction: 0.2 }, HERE);
  assertEquals([split.train.length, split.eval.length], [36, 9]);
});

Deno.test("prompts: batcher covers every prompt once per epoch, new order each epoch", () => {
  const b = new PromptBatcher(letters, { batchSize: 4, seed: 3 });
  assertEquals(b.batchesPerEpoch, 5);
  const epoch0 = b.take(5);
  assertEquals(epoch0.map((x) => x.prompts.length), [4, 4, 4, 4, 1]);
  assertEquals(epoch0.flatMap((x) => x.prompts).sort(), letters);
  assertEquals(epoch0[4].next, { epoch: 0, index: 17 });
  const epoch1 = b.take(5);
  assertEquals(epoch1[0].start, { epoch: 1, index: 0 });
  assertEquals(epoch1.flatMap((x) => x.prompts).sort(), letters);
  assertNotEquals(epoch1.flatMap((x) => x.indices), epoch0.flatMap((x) => x.indices));
  const unshuffled = new PromptBatcher(letters, { batchSize: 4, shuffle: false }).next();
  assertEquals(unshuffled.prompts, ["a", "b", "c", "d"]);
});

Deno.test("prompts: batcher resumed from a cursor yields exactly the uninterrupted sequence", () => {
  for (const dropLast of [false, true]) {
    const straight = new PromptBatcher(letters, { batchSize: 3, seed: 11, dropLast }).take(20);
    for (const stopAfter of [1, 5, 6, 13]) {
      const first = new PromptBatcher(letters, { batchSize: 3, seed: 11, dropLast });
      const head = first.take(stopAfter);
      const saved = JSON.parse(JSON.stringify(first.cursor));
      assertEquals(saved, head[stopAfter - 1].next);
      const resumed = new PromptBatcher(letters, { batchSize: 3, seed: 11, dropLast, cursor: saved });
      assertEquals(
        [...head, ...resumed.take(20 - stopAfter)],
        straight,
        `dropLast ${dropLast}, stop ${stopAfter}`,
      );
    }
  }
});

Deno.test("prompts: dropLast skips the short tail; bad options name the field", () => {
  const b = new PromptBatcher(letters, { batchSize: 5, seed: 1, dropLast: true });
  assertEquals(b.batchesPerEpoch, 3);
  const batches = b.take(4);
  assert(batches.every((x) => x.prompts.length === 5));
  assertEquals(batches[3].start, { epoch: 1, index: 0 });
  assertThrows(() => new PromptBatcher([], { batchSize: 1 }), InvalidArgumentError, "prompts");
  assertThrows(() => new PromptBatcher(letters, { batchSize: 0 }), InvalidArgumentError, "batchSize");
  assertThrows(
    () => new PromptBatcher(["a"], { batchSize: 2, dropLast: true }),
    InvalidArgumentError,
    "batchSize",
  );
  assertThrows(
    () => new PromptBatcher(letters, { batchSize: 2, cursor: { epoch: 0, index: 99 } }),
    InvalidArgumentError,
    "cursor.index",
  );
});
