/**
 * The registry's ScorerFactory over bundle.ts: built-in kinds by name, bundles through their
 * manifest. Every file a manifest names must also lie inside the model root once symlinks are
 * followed (paths.ts checks the bundle folder; this checks what is inside it).
 */
import { join } from "node:path";
import { InvalidArgumentError } from "../../lib/errors.ts";
import { bundleFiles, createBuiltinScorer, createScorer, readBundleManifest } from "./bundle.ts";
import { realPathInside } from "./paths.ts";
import type { ScorerFactory } from "./registry.ts";
import type { ExecutionProvider } from "./scorers/onnx_session.ts";

export interface BundleFactoryOptions {
  /** When set, files named by manifests must resolve inside it. */
  modelRoot?: string;
  executionProvider?: ExecutionProvider;
  /** ONNX Runtime intra-op threads (0 = its default). */
  intraOpNumThreads?: number;
  /** ONNX Runtime pool threads spin-wait after runs (default false). */
  allowSpinning?: boolean;
}

export function bundleScorerFactory(options: BundleFactoryOptions = {}): ScorerFactory {
  return async (source) => {
    if (!source.bundlePath) return await createBuiltinScorer(source.kind);
    const manifest = await readBundleManifest(source.bundlePath);
    if (source.kind && source.kind !== manifest.kind) {
      throw new InvalidArgumentError(
        "kind",
        `the bundle ${source.bundlePath} holds a ${manifest.kind} scorer, not ${source.kind}`,
      );
    }
    if (options.modelRoot) {
      for (const [field, file] of bundleFiles(manifest)) {
        await realPathInside(options.modelRoot, join(source.bundlePath, file), field);
      }
    }
    return await createScorer(source.bundlePath, manifest, {
      executionProvider: options.executionProvider,
      intraOpNumThreads: options.intraOpNumThreads,
      allowSpinning: options.allowSpinning,
    });
  };
}
