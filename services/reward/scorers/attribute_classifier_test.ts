import { assertAlmostEquals, assertEquals } from "../../../lib/testing/assert.ts";
import type { AttributeSpec } from "../bundle_types.ts";
import { attributeScore, headLayouts } from "./attribute_classifier.ts";

const HEADS: AttributeSpec[] = [
  { name: "count", classes: ["one", "two", "none"], patterns: ["^a\\b", "^two\\b", "(?!)"] },
  {
    name: "color",
    classes: ["red", "blue"],
    patterns: ["\\bred\\b", "\\bblue\\b"],
    presence: { head: "count", absent: "none" },
  },
  { name: "background", classes: ["white", "black"], patterns: ["\\bon white\\b", "\\bon black\\b"] },
];

/** A log_probs row from per-head probabilities. */
const row = (...probs: number[][]) => probs.flat().map(Math.log);

Deno.test("headLayouts: offsets, sizes and the presence class of a conditional head", () => {
  assertEquals(headLayouts(HEADS), [
    { offset: 0, size: 3 },
    { offset: 3, size: 2, presence: { offset: 0, size: 3, absent: 2 } },
    { offset: 5, size: 2 },
  ]);
});

Deno.test("attributeScore: a conditional head scores the joint log p(visible, class)", () => {
  const r = row([0.5, 0.2, 0.3], [0.9, 0.1], [0.6, 0.4]);
  // "a red ... on black": count one, colour red (joint with 1 - p(none) = 0.7), background black.
  const score = attributeScore(headLayouts(HEADS), [0, 0, 1], r);
  assertAlmostEquals(score, Math.log(0.5) + Math.log(0.7 * 0.9) + Math.log(0.4), 1e-12);
  // An unconditional head alone is its own log-probability; a head not asked adds nothing.
  assertAlmostEquals(attributeScore(headLayouts(HEADS), [-1, -1, 0], r), Math.log(0.6), 1e-12);
  assertEquals(attributeScore(headLayouts(HEADS), [-1, -1, -1], r), 0);
});

Deno.test("attributeScore: erasing the object costs more than showing it in the wrong colour", () => {
  const layouts = headLayouts(HEADS);
  // Wrong colour, clearly visible, vs no object: the colour head's guess on an empty image is uniform.
  const wrongColour = attributeScore(layouts, [0, 0, -1], row([0.95, 0.04, 0.01], [0.05, 0.95], [0.5, 0.5]));
  const erased = attributeScore(layouts, [0, 0, -1], row([0.2, 0.05, 0.75], [0.5, 0.5], [0.5, 0.5]));
  assertEquals(wrongColour > erased, true, `${wrongColour} vs ${erased}`);
  // Without the presence condition the erased image would have won (the issue-20 reward hack).
  const plain = headLayouts(HEADS.map(({ presence: _, ...h }) => h));
  const erasedPlain = attributeScore(plain, [0, 0, -1], row([0.2, 0.05, 0.75], [0.5, 0.5], [0.5, 0.5]));
  const wrongPlain = attributeScore(plain, [0, 0, -1], row([0.95, 0.04, 0.01], [0.05, 0.95], [0.5, 0.5]));
  assertEquals(erasedPlain > wrongPlain, true, `${erasedPlain} vs ${wrongPlain}`);
});

Deno.test("attributeScore: p(absent) = 1 exactly gives -Infinity, p(absent) = 0 adds nothing", () => {
  const layouts = headLayouts(HEADS);
  assertEquals(attributeScore(layouts, [-1, 0, -1], row([0, 0, 1], [0.5, 0.5], [0.5, 0.5])), -Infinity);
  assertAlmostEquals(
    attributeScore(layouts, [-1, 1, -1], row([0.4, 0.6, 0], [0.5, 0.5], [1, 0])),
    Math.log(0.5),
    1e-12,
  );
});
