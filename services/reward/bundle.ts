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
export * from "./bundle_types.ts";
export { IMAGEREWARD_MEAN, IMAGEREWARD_STD, parseManifest, requiredRoles } from "./bundle_manifest.ts";
import { parseManifest } from "./bundle_manifest.ts";
import type { BundleManifest } from "./bundle_types.ts";
import { BUILTIN_KINDS } from "./bundle_types.ts";
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
