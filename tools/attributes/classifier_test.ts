import * as tf from "@tensorflow/tfjs-core";
import { assert, assertAllClose, assertEquals, assertRejects } from "../../lib/testing/assert.ts";
import { initBackend } from "../../lib/tensor/backend.ts";
import { createScorer } from "../../services/reward/bundle.ts";
import { askedClasses } from "../../services/reward/scorers/attribute_classifier.ts";
import { writeBundle } from "../../services/reward/testing/bundle_dir.ts";
import { makeSample, promptFor, sampleSpec } from "../shapes/dataset.ts";
import {
  ARCHS,
  attributeBundleManifest,
  classifierLogits,
  exportClassifierOnnx,
  headLogProbs,
  IMAGE_SIZE,
  initClassifierParams,
} from "./classifier.ts";
import { ATTRIBUTE_HEADS, headOffsets, totalClasses } from "./heads.ts";

await initBackend("cpu");

Deno.test("every grammar prompt asks for exactly the attributes of its scene", () => {
  const attrs = attributeBundleManifest("x", "1", "").attributes;
  for (let i = 0; i < 300; i++) {
    const spec = sampleSpec(3, i);
    const asked = askedClasses(attrs, promptFor(spec));
    ATTRIBUTE_HEADS.forEach((h, k) => {
      const label = h.label(spec);
      // Every label is asked for (a prompt without stripes asks for the plain background), nothing else.
      assertEquals(asked[k], label, `${h.name} of ${JSON.stringify(promptFor(spec))}`);
    });
  }
  // Outside the grammar only the plain background is asked for (no stripes mentioned).
  const other = askedClasses(attrs, "the photo of cats");
  ATTRIBUTE_HEADS.forEach((h, k) => assertEquals(other[k], h.name === "stripes" ? 0 : -1, h.name));
});

for (const arch of Object.values(ARCHS)) {
  Deno.test(`arch ${arch.name}: the ONNX export scores what the tfjs model computes`, async () => {
    const params = initClassifierParams(arch, ATTRIBUTE_HEADS, 5);
    const samples = [0, 1, 2, 3].map((i) => makeSample(11, i, IMAGE_SIZE));
    const x = tf.tensor4d(
      Float32Array.from(samples.flatMap((s) => [...s.image].map((v) => v / 255))),
      [4, IMAGE_SIZE, IMAGE_SIZE, 3],
    );
    const logp = headLogProbs(classifierLogits(arch, params, x), ATTRIBUTE_HEADS);
    const lp = (await logp.data()) as Float32Array;
    const total = totalClasses();
    const offsets = headOffsets();
    const prompts = samples.map((s) => s.prompt);
    const attrs = attributeBundleManifest("x", "1", "").attributes;
    // The object heads score jointly with visibility: + log(1 - p(count = none)), written here as
    // log1p(-exp) (the scorer takes the log-sum-exp of the other count classes).
    const count = ATTRIBUTE_HEADS.findIndex((h) => h.name === "count");
    const none = ATTRIBUTE_HEADS[count].classes.indexOf("none");
    const want = prompts.map((p, i) =>
      askedClasses(attrs, p).reduce((s, k, h) => {
        if (k < 0) return s;
        const visible = ATTRIBUTE_HEADS[h].presence
          ? Math.log1p(-Math.exp(lp[i * total + offsets[count] + none]))
          : 0;
        return s + lp[i * total + offsets[h] + k] + visible;
      }, 0)
    );
    const dir = await writeBundle(attributeBundleManifest("t", "1", "test"), {
      "model.onnx": await exportClassifierOnnx(arch, params, ATTRIBUTE_HEADS),
    });
    const scorer = await createScorer(dir);
    try {
      assertEquals(scorer.needsPrompts, true);
      const images = samples.map((s) => ({ width: IMAGE_SIZE, height: IMAGE_SIZE, data: s.image }));
      const got = await scorer.score(images, prompts);
      assertAllClose(got, want, { atol: 1e-4, label: "log p of the asked attributes" });
      assert(got.every((v) => v < 0), "log-probabilities are negative");
      await assertRejects(
        () => scorer.score(images.slice(0, 1), ["a red circle on a blue background on a green background"]),
        Error,
        "prompts[0]",
      );
    } finally {
      await scorer.close();
      await Deno.remove(dir, { recursive: true });
      for (const v of params.values()) v.dispose();
      x.dispose();
      logp.dispose();
    }
  });
}
