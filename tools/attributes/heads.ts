/**
 * The attributes a shapes-grammar prompt can ask for (tools/shapes/dataset.ts), as classifier heads:
 * each head is one attribute with its classes, the label of a rendered scene, and for every class
 * the regular expression that finds it in a prompt. The reward bundle's manifest carries the
 * heads (classes + patterns), so the reward service reads prompts without knowing the grammar.
 */
import { COLOR_NAMES, POSITIONS, type SceneSpec, SHAPES, SIZES } from "../shapes/dataset.ts";

/**
 * Whether a training image shows its spec's object(s): `shown`; `none` (no object drawn, faded
 * almost into the background, or too small to see); `ambiguous` (half faded: no count label, so the
 * classifier is not taught an arbitrary threshold).
 */
export type Visibility = "shown" | "none" | "ambiguous";

export interface AttributeHead {
  name: string;
  classes: string[];
  /** One regular expression per class (JavaScript syntax, matched against the lowercased prompt). */
  patterns: string[];
  /** The class a scene shows, or -1 when the image does not decide it (masked out of training). */
  label(spec: SceneSpec, visibility?: Visibility): number;
  /**
   * For the object heads (trained only on images that show the object): the count head's `none`
   * says whether it is visible, and the reward scores the joint log p(visible, class)
   * (services/reward/scorers/attribute_classifier.ts).
   */
  presence?: { head: string; absent: string };
}

// "none" (no visible object) is never asked by a prompt; it is what an empty or erased image is, so a
// prompt's count term log p(one | two | three) is low there (the erasure hack of issue 20).
const COUNT_CLASSES = ["one", "two", "three", "none"];
const COUNT_PATTERNS = ["^a\\b", "^two\\b", "^three\\b", "(?!)"];
/** The object heads say nothing about an image without a visible object. */
const shown = (v: Visibility | undefined) => (v ?? "shown") === "shown";
/** A prompt that mentions no stripes: it asks for the plain background. */
const STRIPES_NONE_PATTERN = "^(?!.*\\bwith \\w+ stripes\\b)";
const shapeNoun = `(?:${SHAPES.join("|")})s?`;
const OBJECT_VISIBLE = { head: "count", absent: "none" };

/** The heads, in the order of the classifier's output. */
export const ATTRIBUTE_HEADS: readonly AttributeHead[] = [
  {
    name: "shape",
    classes: [...SHAPES],
    patterns: SHAPES.map((s) => `\\b${s}s?\\b`),
    label: (s, v) => (shown(v) ? SHAPES.indexOf(s.shape) : -1),
    presence: OBJECT_VISIBLE,
  },
  {
    name: "color",
    classes: [...COLOR_NAMES],
    patterns: COLOR_NAMES.map((c) => `\\b${c} ${shapeNoun}\\b`),
    label: (s, v) => (shown(v) ? COLOR_NAMES.indexOf(s.color) : -1),
    presence: OBJECT_VISIBLE,
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
    patterns: COUNT_PATTERNS,
    label: (s, v) => (v === "none" ? 3 : v === "ambiguous" ? -1 : s.count - 1),
  },
  {
    name: "size",
    classes: [...SIZES],
    patterns: SIZES.map((z) => `\\b${z}\\b`),
    label: (s, v) => (shown(v) ? SIZES.indexOf(s.size) : -1),
    presence: OBJECT_VISIBLE,
  },
  {
    name: "position",
    classes: [...POSITIONS],
    patterns: POSITIONS.map((p) => `\\bat the ${p}\\b`),
    // Without a position the shape sits anywhere: no label.
    label: (s, v) => (s.position && shown(v) ? POSITIONS.indexOf(s.position) : -1),
    presence: OBJECT_VISIBLE,
  },
  {
    name: "stripes",
    classes: ["none", ...COLOR_NAMES],
    // The grammar draws stripes only when the prompt says so, so a prompt without "with ... stripes"
    // asks for a plain background ("none"). Without that, stripes were free: the first tuned models of
    // issue 20's second round painted diagonal stripes over the background (and the object).
    patterns: [STRIPES_NONE_PATTERN, ...COLOR_NAMES.map((c) => `\\bwith ${c} stripes\\b`)],
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
