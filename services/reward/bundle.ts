/**
 * The reward bundle format: a folder holding `manifest.json` plus the files it names (ONNX models,
 * tokenizer vocabularies, head weights). BUNDLES.md documents every field; this module reads and
 * validates a manifest (errors name the field), fills the per-kind defaults, and creates the scorer.
 *
 * Built-in kinds that need no files (`jpeg_compressibility`, `jpeg_incompressibility`, `colorfulness`)
 * can be created from their kind name alone.
 */

import { join } from "node:path";
import { InvalidArgumentError } from "../../lib/errors.ts";
import type { Scorer } from "./scorer.ts";
import type { ExecutionProvider } from "./scorers/onnx_session.ts";

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
}

const CLIP_MEAN: [number, number, number] = [0.48145466, 0.4578275, 0.40821073];
const CLIP_STD: [number, number, number] = [0.26862954, 0.26130258, 0.27577711];

/** ImageReward's `self.mean` / `self.std` (REWARDS.md "imagereward"). */
export const IMAGEREWARD_MEAN = 0.16717362830052426;
export const IMAGEREWARD_STD = 1.0333394966054072;

interface KindDefaults {
  models: Record<string, { feeds: Record<string, FeedSource>; output: string; file?: string }>;
  preprocessing?: PreprocessingType;
  tokenizer?: "clip_bpe" | "wordpiece";
  padId?: number;
  head?: boolean;
  normalization?: { mean: number; std: number };
}

const DEFAULTS: Record<ScorerKind, KindDefaults> = {
  aesthetic: {
    models: {
      vision: { file: "vision.onnx", feeds: { pixel_values: "pixel_values" }, output: "image_embeds" },
    },
    preprocessing: "clip",
    head: true,
  },
  pickscore: {
    models: {
      clip: {
        file: "clip.onnx",
        feeds: { input_ids: "input_ids", pixel_values: "pixel_values", attention_mask: "attention_mask" },
        output: "logits_per_text",
      },
    },
    preprocessing: "clip",
    tokenizer: "clip_bpe",
    padId: 0,
  },
  imagereward: {
    models: {
      vision: { file: "vision.onnx", feeds: { pixel_values: "pixel_values" }, output: "image_embeds" },
      text_head: {
        file: "text_head.onnx",
        feeds: { input_ids: "input_ids", attention_mask: "attention_mask", image_embeds: "image_embeds" },
        output: "reward",
      },
    },
    preprocessing: "clip_torchvision",
    tokenizer: "wordpiece",
    normalization: { mean: IMAGEREWARD_MEAN, std: IMAGEREWARD_STD },
  },
  hpsv2: {
    models: {
      image: { file: "image.onnx", feeds: { pixel_values: "pixel_values" }, output: "image_embeds" },
      text: { file: "text.onnx", feeds: { input_ids: "input_ids" }, output: "text_embeds" },
    },
    preprocessing: "hpsv2",
    tokenizer: "clip_bpe",
    padId: 0,
  },
  onnx: { models: {} },
  jpeg_compressibility: { models: {} },
  jpeg_incompressibility: { models: {} },
  colorfulness: { models: {} },
  attribute_classifier: {
    models: {
      model: { file: "model.onnx", feeds: { pixel_values: "pixel_values" }, output: "log_probs" },
    },
    preprocessing: "clip",
  },
};

/** Roles each kind requires in `models`. */
export function requiredRoles(kind: ScorerKind): string[] {
  return kind === "onnx" ? ["model"] : Object.keys(DEFAULTS[kind].models);
}

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function str(obj: Json, key: string, field: string, fallback?: string): string {
  const v = obj[key];
  if (v === undefined && fallback !== undefined) return fallback;
  if (typeof v !== "string" || v.length === 0) {
    throw new InvalidArgumentError(`${field}.${key}`, "must be a non-empty string");
  }
  return v;
}

function num(obj: Json, key: string, field: string, fallback?: number): number {
  const v = obj[key];
  if (v === undefined && fallback !== undefined) return fallback;
  if (typeof v !== "number" || !Number.isFinite(v)) {
    throw new InvalidArgumentError(`${field}.${key}`, "must be a finite number");
  }
  return v;
}

function int(obj: Json, key: string, field: string, fallback: number, min: number): number {
  const v = num(obj, key, field, fallback);
  if (!Number.isInteger(v) || v < min) {
    throw new InvalidArgumentError(`${field}.${key}`, `must be an integer >= ${min}, got ${v}`);
  }
  return v;
}

function triple(
  obj: Json,
  key: string,
  field: string,
  fallback: [number, number, number],
): [number, number, number] {
  const v = obj[key];
  if (v === undefined) return fallback;
  if (!Array.isArray(v) || v.length !== 3 || !v.every((x) => typeof x === "number" && Number.isFinite(x))) {
    throw new InvalidArgumentError(`${field}.${key}`, "must be an array of 3 finite numbers");
  }
  return v as [number, number, number];
}

/** A relative path inside the bundle (no absolute paths, no `..`). */
function bundlePath(obj: Json, key: string, field: string, fallback?: string): string {
  const p = str(obj, key, field, fallback);
  if (p.startsWith("/") || p.split(/[\\/]/).includes("..")) {
    throw new InvalidArgumentError(
      `${field}.${key}`,
      `must be a path inside the bundle, got ${JSON.stringify(p)}`,
    );
  }
  return p;
}

function parseModels(raw: unknown, kind: ScorerKind): Record<string, ModelSpec> {
  if (raw !== undefined && !isObject(raw)) {
    throw new InvalidArgumentError("models", "must be an object of role -> model");
  }
  const given = (raw ?? {}) as Json;
  const defaults = DEFAULTS[kind].models;
  const roles = requiredRoles(kind);
  for (const role of Object.keys(given)) {
    if (kind !== "onnx" && !roles.includes(role)) {
      throw new InvalidArgumentError(
        `models.${role}`,
        `unknown role for kind ${kind} (roles: ${roles.join(", ")})`,
      );
    }
  }
  const out: Record<string, ModelSpec> = {};
  for (const role of roles) {
    const field = `models.${role}`;
    const m = given[role];
    if (m !== undefined && !isObject(m)) throw new InvalidArgumentError(field, "must be an object");
    const spec = (m ?? {}) as Json;
    const d = defaults[role];
    if (!d && m === undefined) throw new InvalidArgumentError(field, "is required");
    const file = bundlePath(spec, "file", field, d?.file);
    let feeds: Record<string, FeedSource>;
    if (spec.feeds === undefined) {
      if (!d) throw new InvalidArgumentError(`${field}.feeds`, "is required for kind onnx");
      feeds = { ...d.feeds };
    } else {
      if (!isObject(spec.feeds) || Object.keys(spec.feeds).length === 0) {
        throw new InvalidArgumentError(
          `${field}.feeds`,
          "must be a non-empty object of input name -> source",
        );
      }
      feeds = {};
      for (const [input, src] of Object.entries(spec.feeds)) {
        if (!FEED_SOURCES.includes(src as FeedSource)) {
          throw new InvalidArgumentError(
            `${field}.feeds.${input}`,
            `must be one of ${FEED_SOURCES.join(", ")}, got ${JSON.stringify(src)}`,
          );
        }
        feeds[input] = src as FeedSource;
      }
    }
    const output = str(spec, "output", field, d?.output);
    out[role] = { file, feeds, output };
  }
  return out;
}

function parsePreprocessing(
  raw: unknown,
  fallback: PreprocessingType | undefined,
): PreprocessingSpec | undefined {
  if (raw === undefined && fallback === undefined) return undefined;
  if (raw !== undefined && !isObject(raw)) {
    throw new InvalidArgumentError("preprocessing", "must be an object");
  }
  const p = (raw ?? {}) as Json;
  const type = str(p, "type", "preprocessing", fallback) as PreprocessingType;
  if (!PREPROCESSING_TYPES.includes(type)) {
    throw new InvalidArgumentError(
      "preprocessing.type",
      `must be one of ${PREPROCESSING_TYPES.join(", ")}, got ${JSON.stringify(type)}`,
    );
  }
  const std = triple(p, "std", "preprocessing", CLIP_STD);
  if (std.some((s) => s <= 0)) throw new InvalidArgumentError("preprocessing.std", "values must be positive");
  const spec: PreprocessingSpec = {
    type,
    size: int(p, "size", "preprocessing", 224, 1),
    mean: triple(p, "mean", "preprocessing", CLIP_MEAN),
    std,
  };
  if (p.antialias !== undefined) {
    if (typeof p.antialias !== "boolean") {
      throw new InvalidArgumentError("preprocessing.antialias", "must be a boolean");
    }
    spec.antialias = p.antialias;
  }
  return spec;
}

function parseTokenizer(raw: unknown, d: KindDefaults): TokenizerSpec | undefined {
  if (raw === undefined && d.tokenizer === undefined) return undefined;
  if (raw === undefined) {
    throw new InvalidArgumentError("tokenizer", `is required (a ${d.tokenizer} tokenizer)`);
  }
  if (!isObject(raw)) throw new InvalidArgumentError("tokenizer", "must be an object");
  const type = str(raw, "type", "tokenizer", d.tokenizer);
  if (type === "clip_bpe") {
    const padId = int(raw, "pad_id", "tokenizer", d.padId ?? 49407, 0);
    if (padId >= 49408) throw new InvalidArgumentError("tokenizer.pad_id", `must be < 49408, got ${padId}`);
    return {
      type,
      file: bundlePath(raw, "file", "tokenizer", "bpe_simple_vocab_16e6.txt.gz"),
      context_length: int(raw, "context_length", "tokenizer", 77, 2),
      pad_id: padId,
    };
  }
  if (type === "wordpiece") {
    const added = raw.added_tokens ?? ["[DEC]", "[ENC]"];
    if (!Array.isArray(added) || !added.every((t) => typeof t === "string" && t.length > 0)) {
      throw new InvalidArgumentError("tokenizer.added_tokens", "must be an array of non-empty strings");
    }
    if (raw.lowercase !== undefined && typeof raw.lowercase !== "boolean") {
      throw new InvalidArgumentError("tokenizer.lowercase", "must be a boolean");
    }
    return {
      type,
      file: bundlePath(raw, "file", "tokenizer", "vocab.txt"),
      max_length: int(raw, "max_length", "tokenizer", 35, 2),
      lowercase: (raw.lowercase as boolean | undefined) ?? true,
      added_tokens: added as string[],
    };
  }
  throw new InvalidArgumentError(
    "tokenizer.type",
    `must be "clip_bpe" or "wordpiece", got ${JSON.stringify(type)}`,
  );
}

/** Validates a parsed manifest object and fills the per-kind defaults. */
export function parseManifest(raw: unknown): BundleManifest {
  if (!isObject(raw)) throw new InvalidArgumentError("manifest", "must be a JSON object");
  const format = num(raw, "format", "manifest", BUNDLE_FORMAT);
  if (format !== BUNDLE_FORMAT) {
    throw new InvalidArgumentError(
      "manifest.format",
      `this reader understands format ${BUNDLE_FORMAT}, got ${format}`,
    );
  }
  const kind = str(raw, "kind", "manifest") as ScorerKind;
  if (!SCORER_KINDS.includes(kind)) {
    throw new InvalidArgumentError(
      "manifest.kind",
      `must be one of ${SCORER_KINDS.join(", ")}, got ${JSON.stringify(kind)}`,
    );
  }
  const d = DEFAULTS[kind];
  const manifest: BundleManifest = {
    format,
    kind,
    name: str(raw, "name", "manifest", kind),
    version: str(raw, "version", "manifest"),
    models: BUILTIN_KINDS.includes(kind) ? {} : parseModels(raw.models, kind),
  };
  if (raw.description !== undefined) manifest.description = str(raw, "description", "manifest");
  const tokenizer = parseTokenizer(raw.tokenizer, d);
  if (tokenizer) manifest.tokenizer = tokenizer;
  const pre = parsePreprocessing(raw.preprocessing, d.preprocessing);
  if (pre) manifest.preprocessing = pre;
  if (d.head || raw.head !== undefined) {
    if (raw.head !== undefined && !isObject(raw.head)) {
      throw new InvalidArgumentError("head", "must be an object");
    }
    const h = (raw.head ?? {}) as Json;
    manifest.head = {
      file: bundlePath(h, "file", "head", "head.safetensors"),
      prefix: str(h, "prefix", "head", "layers."),
    };
  }
  const norm = raw.normalization ?? d.normalization;
  if (norm !== undefined) {
    if (!isObject(norm)) throw new InvalidArgumentError("normalization", "must be an object {mean, std}");
    const std = num(norm, "std", "normalization");
    if (std === 0) throw new InvalidArgumentError("normalization.std", "must not be 0");
    manifest.normalization = { mean: num(norm, "mean", "normalization"), std };
  }
  if (kind === "onnx") {
    const reduce = raw.output_reduce ?? "per_image";
    if (reduce !== "per_image" && reduce !== "diagonal") {
      throw new InvalidArgumentError(
        "output_reduce",
        `must be "per_image" or "diagonal", got ${JSON.stringify(reduce)}`,
      );
    }
    manifest.output_reduce = reduce;
    const sources = Object.values(manifest.models.model.feeds);
    if (sources.includes("image_embeds")) {
      throw new InvalidArgumentError(
        "models.model.feeds",
        "image_embeds is only available to imagereward's text_head",
      );
    }
    if (!sources.includes("pixel_values")) {
      throw new InvalidArgumentError("models.model.feeds", "must feed pixel_values to some input");
    }
    if (!manifest.preprocessing) {
      manifest.preprocessing = parsePreprocessing({ type: "clip" }, "clip");
    }
    if ((sources.includes("input_ids") || sources.includes("attention_mask")) && !manifest.tokenizer) {
      throw new InvalidArgumentError(
        "tokenizer",
        "is required when the model is fed input_ids or attention_mask",
      );
    }
  }
  if (kind === "attribute_classifier") {
    const bad = Object.values(manifest.models.model.feeds).filter((f) => f !== "pixel_values");
    if (bad.length) {
      throw new InvalidArgumentError(
        "models.model.feeds",
        `attribute_classifier feeds only pixel_values, got ${bad.join(", ")}`,
      );
    }
    manifest.attributes = parseAttributes(raw.attributes);
  }
  return manifest;
}

function parseAttributes(raw: unknown): AttributeSpec[] {
  if (!Array.isArray(raw) || raw.length === 0) {
    throw new InvalidArgumentError("attributes", "must be a non-empty array of {name, classes, patterns}");
  }
  return raw.map((a, i) => {
    const field = `attributes[${i}]`;
    if (!isObject(a)) throw new InvalidArgumentError(field, "must be an object {name, classes, patterns}");
    const name = str(a, "name", field);
    const strings = (key: string) => {
      const v = a[key];
      if (!Array.isArray(v) || v.length < 2 || !v.every((x) => typeof x === "string" && x.length > 0)) {
        throw new InvalidArgumentError(`${field}.${key}`, "must be an array of at least 2 non-empty strings");
      }
      return v as string[];
    };
    const classes = strings("classes");
    const patterns = strings("patterns");
    if (patterns.length !== classes.length) {
      throw new InvalidArgumentError(
        `${field}.patterns`,
        `must have one pattern per class (${classes.length}), got ${patterns.length}`,
      );
    }
    patterns.forEach((p, k) => {
      try {
        new RegExp(p);
      } catch (e) {
        throw new InvalidArgumentError(
          `${field}.patterns[${k}]`,
          `is not a regular expression: ${(e as Error).message}`,
        );
      }
    });
    return { name, classes, patterns };
  });
}

/** Reads and validates `<bundleDir>/manifest.json`, and checks that every file it names exists. */
export async function readBundleManifest(bundleDir: string): Promise<BundleManifest> {
  const path = join(bundleDir, "manifest.json");
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new InvalidArgumentError("bundle", `cannot read ${path}: ${(e as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new InvalidArgumentError("manifest", `${path} is not valid JSON: ${(e as Error).message}`);
  }
  const manifest = parseManifest(raw);
  for (const [field, file] of bundleFiles(manifest)) {
    try {
      await Deno.stat(join(bundleDir, file));
    } catch {
      throw new InvalidArgumentError(
        field,
        `file ${JSON.stringify(file)} is missing from bundle ${bundleDir}`,
      );
    }
  }
  return manifest;
}

/** `[field, relative path]` of every file a manifest names. */
export function bundleFiles(m: BundleManifest): [string, string][] {
  const files: [string, string][] = Object.entries(m.models).map((
    [role, s],
  ) => [`models.${role}.file`, s.file]);
  if (m.tokenizer) files.push(["tokenizer.file", m.tokenizer.file]);
  if (m.head) files.push(["head.file", m.head.file]);
  return files;
}

export interface CreateScorerOptions {
  executionProvider?: ExecutionProvider;
  intraOpNumThreads?: number;
  /** ORT pool threads spin-wait after runs (default false; see onnx_session.ts). */
  allowSpinning?: boolean;
}

/**
 * Creates the scorer a bundle describes. `manifest` defaults to the bundle's manifest.json; for
 * the built-in kinds `bundleDir` may be empty and `manifest` just `{kind}` (see `createBuiltinScorer`).
 */
export async function createScorer(
  bundleDir: string,
  manifest?: BundleManifest,
  options: CreateScorerOptions = {},
): Promise<Scorer> {
  const m = manifest ?? await readBundleManifest(bundleDir);
  const resolve = (p: string) => join(bundleDir, p);
  switch (m.kind) {
    case "jpeg_compressibility":
    case "jpeg_incompressibility":
    case "colorfulness":
      return await createBuiltinScorer(m.kind);
    case "aesthetic": {
      const { AestheticScorer } = await import("./scorers/aesthetic.ts");
      return await AestheticScorer.create(m, resolve, options);
    }
    case "pickscore": {
      const { PickScoreScorer } = await import("./scorers/pickscore.ts");
      return await PickScoreScorer.create(m, resolve, options);
    }
    case "imagereward": {
      const { ImageRewardScorer } = await import("./scorers/imagereward.ts");
      return await ImageRewardScorer.create(m, resolve, options);
    }
    case "hpsv2": {
      const { Hpsv2Scorer } = await import("./scorers/hpsv2.ts");
      return await Hpsv2Scorer.create(m, resolve, options);
    }
    case "onnx": {
      const { OnnxGenericScorer } = await import("./scorers/onnx_generic.ts");
      return await OnnxGenericScorer.create(m, resolve, options);
    }
    case "attribute_classifier": {
      const { AttributeClassifierScorer } = await import("./scorers/attribute_classifier.ts");
      return await AttributeClassifierScorer.create(m, resolve, options);
    }
  }
}

/** A scorer of a kind that needs no files, by kind name alone. */
export async function createBuiltinScorer(kind: string): Promise<Scorer> {
  if (kind === "colorfulness") {
    const { ColorfulnessScorer } = await import("./scorers/colorfulness.ts");
    return new ColorfulnessScorer();
  }
  if (kind !== "jpeg_compressibility" && kind !== "jpeg_incompressibility") {
    throw new InvalidArgumentError(
      "kind",
      `${JSON.stringify(kind)} is not a built-in kind (${BUILTIN_KINDS.join(", ")})`,
    );
  }
  const { JpegScorer } = await import("./scorers/jpeg.ts");
  return new JpegScorer(kind);
}
