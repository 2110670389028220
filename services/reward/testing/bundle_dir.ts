/**
 * Test helpers that lay out reward bundles in temporary folders: `linkBundle` symlinks existing
 * files (fixtures are never copied), `writeBundle` writes generated ones (e.g. ONNX bytes from
 * onnx_builder.ts). Both write `manifest.json` and return the folder; remove it when done.
 */

/** A bundle folder holding `manifest.json` and symlinks `name -> target`. */
export async function linkBundle(manifest: object, links: Record<string, string>): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "reward-bundle-" });
  for (const [name, target] of Object.entries(links)) await Deno.symlink(target, `${dir}/${name}`);
  await Deno.writeTextFile(`${dir}/manifest.json`, JSON.stringify(manifest, null, 2));
  return dir;
}

/** A bundle folder holding `manifest.json` and the given files (bytes or text). */
export async function writeBundle(
  manifest: object,
  files: Record<string, Uint8Array | string>,
): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "reward-bundle-" });
  for (const [name, content] of Object.entries(files)) {
    if (typeof content === "string") await Deno.writeTextFile(`${dir}/${name}`, content);
    else await Deno.writeFile(`${dir}/${name}`, content);
  }
  await Deno.writeTextFile(`${dir}/manifest.json`, JSON.stringify(manifest, null, 2));
  return dir;
}
