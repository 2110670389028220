/** The reward bundle manifest's types and enumerations (BUNDLES.md documents every field). */

/** The manifest format this reader understands (`format` field). */
export const BUNDLE_FORMAT = 1;

export const SCORER_KINDS = [
  "aesthetic",
  "pickscore",
  "imagereward",
  "hpsv2",
  "onnx",
  "jpeg_compressibility",
  "jpeg_incompressibility",
  "colorfulness",
  "attribute_classifier",
] as const;
export type ScorerKind = typeof SCORER_KINDS[number];

/** Kinds computed without any model file. */
export const BUILTIN_KINDS: readonly ScorerKind[] = [
  "jpeg_compressibility",
  "jpeg_incompressibility",
  "colorfulness",
];

/** Where a model input's values come from. */
export const FEED_SOURCES = ["pixel_values", "input_ids", "attention_mask", "image_embeds"] as const;
export type FeedSource = typeof FEED_SOURCES[number];

export interface ModelSpec {
  /** ONNX file, relative to the bundle folder. */
  file: string;
  /** Model input name -> the value fed to it. */
  feeds: Record<string, FeedSource>;
  /** The output tensor the scorer reads. */
  output: string;
}

export const PREPROCESSING_TYPES = ["clip", "clip_torchvision", "hpsv2"] as const;
export type PreprocessingType = typeof PREPROCESSING_TYPES[number];

export interface PreprocessingSpec {
  /**
   * `clip`: transformers CLIPImageProcessor (floor crop, x*(1/255) in float64);
   * `clip_torchvision`: OpenAI clip.py / ImageReward's torchvision Compose (round-half-even crop, x/255 in float32);
   * `hpsv2`: longest side + pad (HPSv2 `ResizeMaxSize`).
   */
  type: PreprocessingType;
  size: number;
  mean: [number, number, number];
  std: [number, number, number];
  /** hpsv2 only: torchvision's tensor antialias flag (true for torchvision >= 0.17). */
  antialias?: boolean;
}

export type TokenizerSpec =
  | { type: "clip_bpe"; file: string; context_length: number; pad_id: number }
  | { type: "wordpiece"; file: string; max_length: number; lowercase: boolean; added_tokens: string[] };

export interface HeadSpec {
  /** safetensors file of a Linear chain (`{prefix}{i}.weight/bias`). */
  file: string;
  prefix: string;
}

/** How a model output becomes one score per image (generic `onnx` kind). */
export type OutputReduce = "per_image" | "diagonal";

export interface BundleManifest {
  format: number;
  kind: ScorerKind;
  name: string;
  version: string;
  description?: string;
  /** Role -> model (roles per kind: see BUNDLES.md). */
  models: Record<string, ModelSpec>;
  tokenizer?: TokenizerSpec;
  preprocessing?: PreprocessingSpec;
  head?: HeadSpec;
  /** `score = (raw - mean) / std` (imagereward's constants; any kind may set it). */
  normalization?: { mean: number; std: number };
  /** Generic `onnx` kind: how the output is reduced. */
  output_reduce?: OutputReduce;
  /** `attribute_classifier` kind: the heads of the model's `log_probs` output, in order. */
  attributes?: AttributeSpec[];
}

/** One head of an attribute classifier: its classes and, per class, the prompt pattern that asks for it. */
export interface AttributeSpec {
  name: string;
  classes: string[];
  /** Regular expressions (JavaScript), one per class, matched against the lowercased prompt. */
  patterns: string[];
  /**
   * Set when this head's classes are conditional on an object being visible (it was trained only on
   * images that show one): class `absent` of head `head` is the probability that none is. The head's
   * term is then the joint log p(visible, class) = log(1 - p(absent)) + log p(class | visible), so an
   * image without the object cannot score the head's uninformed (near-uniform) guess.
   */
  presence?: PresenceSpec;
}

/** See AttributeSpec.presence. */
export interface PresenceSpec {
  /** The head whose class `absent` says "no visible object". */
  head: string;
  absent: string;
}
