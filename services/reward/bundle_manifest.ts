/**
 * Reading a bundle manifest: validation (errors name the field) and the per-kind defaults that
 * fill what a manifest leaves out (REWARDS.md gives each kind's reference values).
 */
import { InvalidArgumentError } from "../../lib/errors.ts";
import type {
  BundleManifest,
  FeedSource,
  ModelSpec,
  PreprocessingSpec,
  PreprocessingType,
  ScorerKind,
  TokenizerSpec,
} from "./bundle_types.ts";
import {
  BUILTIN_KINDS,
  BUNDLE_FORMAT,
  FEED_SOURCES,
  PREPROCESSING_TYPES,
  SCORER_KINDS,
} from "./bundle_types.ts";
import { parseAttributes } from "./bundle_attributes.ts";
import { int, isObject, type Json, num, str, triple } from "./manifest_fields.ts";

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
