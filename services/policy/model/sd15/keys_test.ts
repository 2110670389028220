/**
 * SD1.5's exact parameter names and shapes: the models built from SD1.5's configs (configs.ts)
 * declare exactly the state-dict keys diffusers / transformers produce, with the same shapes
 * (../shared/fixtures/sd15_keys, made by diffusers v0.24.0). Building declares shapes only; no
 * weight is allocated, so this runs at full size in milliseconds.
 */
import { assertEquals } from "../../../../lib/testing/assert.ts";
import { parseClipTextConfig, parseUNetConfig, parseVaeConfig } from "../config.ts";
import { UNet2DConditionModel } from "../unet.ts";
import { AutoencoderKL } from "../vae.ts";
import { CLIPTextModel } from "../clip_text.ts";
import type { ParamStore } from "../params.ts";
import { SD15_TEXT_ENCODER_CONFIG, SD15_UNET_CONFIG, SD15_VAE_CONFIG, sd15Json } from "./configs.ts";
import { keyManifestDiff } from "./keys.ts";
import { fixturePath, hasFixtures } from "../../../../lib/testing/fixtures.ts";

const ignore = !hasFixtures(fixturePath("sd15_keys"));

interface Manifest {
  config: Record<string, unknown>;
  keys: Record<string, number[]>;
  parameters: number;
}

async function manifest(name: string): Promise<Manifest> {
  return JSON.parse(await Deno.readTextFile(fixturePath("sd15_keys", `${name}.json`))) as Manifest;
}

function assertMatches(store: ParamStore, m: Manifest): void {
  const diff = keyManifestDiff(store, m.keys);
  assertEquals(diff, { missing: [], extra: [], misShaped: [] });
  assertEquals(store.count(), m.parameters);
}

Deno.test(
  { name: "sd15 unet: exactly diffusers' keys and shapes (859,520,964 parameters)", ignore },
  async () => {
    const m = await manifest("unet");
    assertMatches(new UNet2DConditionModel(parseUNetConfig(sd15Json(SD15_UNET_CONFIG))).params, m);
    // The fixture's own resolved config builds the same model.
    assertMatches(new UNet2DConditionModel(parseUNetConfig(m.config)).params, m);
  },
);

Deno.test({ name: "sd15 vae: exactly diffusers' keys and shapes", ignore }, async () => {
  const m = await manifest("vae");
  assertMatches(new AutoencoderKL(parseVaeConfig(sd15Json(SD15_VAE_CONFIG))).params, m);
  assertMatches(new AutoencoderKL(parseVaeConfig(m.config)).params, m);
});

Deno.test(
  { name: "sd15 text encoder: exactly transformers' CLIPTextModel keys and shapes", ignore },
  async () => {
    const m = await manifest("text_encoder");
    assertMatches(new CLIPTextModel(parseClipTextConfig(sd15Json(SD15_TEXT_ENCODER_CONFIG))).params, m);
    assertMatches(new CLIPTextModel(parseClipTextConfig(m.config)).params, m);
  },
);

Deno.test({ name: "keyManifestDiff names missing, extra and mis-shaped keys", ignore }, async () => {
  const m = await manifest("vae");
  const keys = structuredClone(m.keys);
  const [first, second] = Object.keys(keys);
  delete keys[first];
  keys["decoder.extra.weight"] = [1];
  keys[second] = [...keys[second], 1];
  const diff = keyManifestDiff(new AutoencoderKL(parseVaeConfig(m.config)).params, keys);
  assertEquals(diff.missing, ["decoder.extra.weight"]);
  assertEquals(diff.extra, [first]);
  assertEquals(diff.misShaped.length, 1);
  assertEquals(diff.misShaped[0].startsWith(`${second}: declared`), true);
});
