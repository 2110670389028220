/** Compares a model's declared parameters with a key -> shape manifest (diffusers' state_dict). */
import type { ParamStore } from "../params.ts";

export interface KeyManifestDiff {
  /** In the manifest, not declared by the model. */
  missing: string[];
  /** Declared by the model, not in the manifest. */
  extra: string[];
  /** In both with different shapes: "key: declared [..], manifest [..]". */
  misShaped: string[];
}

export function keyManifestDiff(
  store: ParamStore,
  manifest: Record<string, readonly number[]>,
): KeyManifestDiff {
  const declared = new Map(store.params().map((p) => [p.name, p.shape]));
  const misShaped: string[] = [];
  for (const [k, shape] of declared) {
    const want = manifest[k];
    if (want && JSON.stringify([...want]) !== JSON.stringify([...shape])) {
      misShaped.push(`${k}: declared ${JSON.stringify(shape)}, manifest ${JSON.stringify(want)}`);
    }
  }
  return {
    missing: Object.keys(manifest).filter((k) => !declared.has(k)).sort(),
    extra: [...declared.keys()].filter((k) => !(k in manifest)).sort(),
    misShaped,
  };
}
