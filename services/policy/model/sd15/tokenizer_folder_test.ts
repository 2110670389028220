/**
 * make-model's tokenizer/ folder is transformers' CLIPTokenizer layout written from the BPE
 * vocabulary file: vocab.json's ids are the reference tokenizer's (checked against the clip-bpe
 * vectors), merges.txt alone rebuilds the same tokenizer, and the pipeline loader reads it.
 */
import { join } from "node:path";
import { assert, assertEquals } from "../../../../lib/testing/assert.ts";
import { fixturePath, hasFixtures } from "../../../../lib/testing/fixtures.ts";
import { bytesToUnicode, ClipBpeTokenizer } from "../../../../lib/text/clip_bpe.ts";
import { loadPromptTokenizer } from "../../pipeline.ts";
import { HF_BOS, HF_EOS, writeClipTokenizerFolder } from "./tokenizer_folder.ts";

const BPE_DIR = fixturePath("clip-bpe");
const VOCAB = join(BPE_DIR, "bpe_simple_vocab_16e6.txt.gz");

Deno.test({
  name: "tokenizer/ folder: vocab.json and merges.txt give the reference tokenizer's ids",
  ignore: !hasFixtures(BPE_DIR),
  async fn() {
    const root = await Deno.makeTempDir({ prefix: "tokenizer-folder-" });
    try {
      const dir = join(root, "tokenizer");
      const files = await writeClipTokenizerFolder(VOCAB, dir, 77);
      assertEquals(files.map((f) => f.slice(dir.length + 1)).sort(), [
        "merges.txt",
        "special_tokens_map.json",
        "tokenizer_config.json",
        "vocab.json",
      ]);
      const reference = await ClipBpeTokenizer.fromFile(VOCAB);
      const vocab = JSON.parse(await Deno.readTextFile(join(dir, "vocab.json"))) as Record<string, number>;
      const ids = Object.values(vocab).sort((a, b) => a - b);
      assertEquals(ids.length, reference.vocabSize);
      assert(ids.every((id, i) => id === i), "vocab.json ids are not 0..N-1 once each");
      assertEquals([vocab[HF_BOS], vocab[HF_EOS]], [reference.sotId, reference.eotId]);
      const config = JSON.parse(await Deno.readTextFile(join(dir, "tokenizer_config.json")));
      assertEquals([config.bos_token, config.eos_token, config.model_max_length], [HF_BOS, HF_EOS, 77]);

      // The reference ids of the fixture texts, looked up in vocab.json, spell the texts.
      const symbol = new Map(Object.entries(vocab).map(([s, id]) => [id, s]));
      const byteOf = new Map([...bytesToUnicode()].map(([b, u]) => [u, b]));
      const fromMerges = await ClipBpeTokenizer.fromFile(join(dir, "merges.txt"));
      const { vectors } = JSON.parse(await Deno.readTextFile(join(BPE_DIR, "vectors.json")));
      for (const v of vectors as { text: string; ids: number[] }[]) {
        const body = v.ids.slice(1, -1).map((id) => symbol.get(id)!).join("").replaceAll("</w>", " ");
        const bytes = Uint8Array.from([...body].map((ch) => (ch === " " ? 32 : byteOf.get(ch)!)));
        const words = new TextDecoder().decode(bytes).trim().split(/\s+/).join("");
        assertEquals(words, v.text.toLowerCase().replace(/\s+/g, ""), JSON.stringify(v.text));
        // merges.txt alone rebuilds the tokenizer (header line, then the merges in rank order).
        assertEquals([fromMerges.sotId, ...fromMerges.bpeIds(v.text), fromMerges.eotId], v.ids, v.text);
      }

      // The pipeline loader reads the folder (merges.txt) and pads with EOT to 77.
      const loaded = (await loadPromptTokenizer(root, 77))!;
      const cat = (vectors as { text: string; ids: number[] }[]).find((v) => v.text === "a photo of a cat")!;
      const encoded = Array.from(loaded.encode(cat.text));
      assertEquals(encoded.slice(0, cat.ids.length), cat.ids);
      assertEquals(encoded.length, 77);
      assert(encoded.slice(cat.ids.length).every((id) => id === reference.eotId));
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});
