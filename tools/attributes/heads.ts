/**
 * The attributes a shapes-grammar prompt can ask for (tools/shapes/dataset.ts), as classifier heads:
 * each head is one attribute with its classes, the label of a rendered scene, and for every class
 * the regular expression that finds it in a prompt. The reward bundle's manifest carries the
 * heads (classes + patterns), so the reward service reads prompts without knowing the grammar.
 */
import { COLOR_NAMES, POSITIONS, type SceneSpec, SHAPES, SIZES } from "../shapes/dataset.ts";

export interface AttributeHead {
  name: string;
  classes: string[];
  /** One regular expression per class (JavaScript syntax, matched against the lowercased prompt). */
  patterns: string[];
  /** The class a scene shows, or -1 when the image does not decide it (masked out of training). */
  label(spec: SceneSpec): number;
}

const COUNT_CLASSES = ["one", "two", "three"];
const COUNT_WORDS = ["a", "two", "three"];
const shapeNoun = `(?:${SHAPES.join("|")})s?`;

/** The heads, in the order of the classifier's output. */
export const ATTRIBUTE_HEADS: readonly AttributeHead[] = [
  {
    name: "shape",
    classes: [...SHAPES],
    patterns: SHAPES.map((s) => `\\b${s}s?\\b`),
    label: (s) => SHAPES.indexOf(s.shape),
  },
  {
    name: "color",
    classes: [...COLOR_NAMES],
    patterns: COLOR_NAMES.map((c) => `\\b${c} ${shapeNoun}\\b`),
    label: (s) => COLOR_NAMES.indexOf(s.color),
  },
  {
    name: "background",
    classes: [...COLOR_NAMES],
    patterns: COLOR_NAMES.map((c) => `\\bon a ${c} background\\b`),
    label: (s) => COLOR_NAMES.indexOf(s.background),
  },
  {
    name: "count",
    classes: COUNT_CLASSES,
    patterns: COUNT_WORDS.map((w) => `^${w}\\b`),
    label: (s) => s.count - 1,
  },
  {
    name: "size",
    classes: [...SIZES],
    patterns: SIZES.map((z) => `\\b${z}\\b`),
    label: (s) => SIZES.indexOf(s.size),
  },
  {
    name: "position",
    classes: [...POSITIONS],
    patterns: POSITIONS.map((p) => `\\bat the ${p}\\b`),
    // Without a position the shape sits anywhere: no label.
    label: (s) => (s.position ? POSITIONS.indexOf(s.position) : -1),
  },
  {
    name: "stripes",
    classes: ["none", ...COLOR_NAMES],
    // "none" is never asked by a prompt (a pattern that cannot match): plain is not a prompt word.
    patterns: ["(?!)", ...COLOR_NAMES.map((c) => `\\bwith ${c} stripes\\b`)],
    label: (s) => (s.stripes ? 1 + COLOR_NAMES.indexOf(s.stripes) : 0),
  },
];

/** Total number of classes over all heads (the classifier's output width). */
export function totalClasses(heads: readonly AttributeHead[] = ATTRIBUTE_HEADS): number {
  return heads.reduce((n, h) => n + h.classes.length, 0);
}

/** Per head, the class offset in the concatenated output. */
export function headOffsets(heads: readonly AttributeHead[] = ATTRIBUTE_HEADS): number[] {
  const out: number[] = [];
  let o = 0;
  for (const h of heads) {
    out.push(o);
    o += h.classes.length;
  }
  return out;
}
