import { fixturePath, hasFixtures } from "../testing/fixtures.ts";
import { assert, assertEquals, assertThrows } from "../testing/assert.ts";
import { InvalidArgumentError } from "../errors.ts";
import { bytesToUnicode, ClipBpeTokenizer } from "./clip_bpe.ts";
import { clipCleanText, ftfyFixText } from "./text_clean.ts";
import { htmlUnescape } from "./html_unescape.ts";

const BPE_DIR = fixturePath("clip-bpe");
const VOCAB = `${BPE_DIR}/bpe_simple_vocab_16e6.txt.gz`;
const CLIP_EXPECTED = fixturePath("clip_scorer", "expected.json");

let shared: Promise<ClipBpeTokenizer> | undefined;
function tokenizer(): Promise<ClipBpeTokenizer> {
  shared ??= ClipBpeTokenizer.fromFile(VOCAB);
  return shared;
}

Deno.test({
  name: "ClipBpeTokenizer reproduces the clip-bpe vectors exactly",
  ignore: !hasFixtures(BPE_DIR),
  fn: async () => {
    const tok = await tokenizer();
    assertEquals(tok.vocabSize, 49408);
    assertEquals([tok.sotId, tok.eotId], [49406, 49407]);
    const { vectors } = JSON.parse(await Deno.readTextFile(`${BPE_DIR}/vectors.json`));
    assert(vectors.length > 0, "no vectors");
    for (const v of vectors as { text: string; ids: number[] }[]) {
      assertEquals([tok.sotId, ...tok.bpeIds(v.text), tok.eotId], v.ids, JSON.stringify(v.text));
      if (v.ids.length <= 77) {
        const e = tok.encode(v.text, { contextLength: 77, padId: 0 });
        assertEquals(e.inputIds.slice(0, v.ids.length), v.ids);
        assert(e.inputIds.slice(v.ids.length).every((x) => x === 0), "padding with 0");
      }
    }
  },
});

Deno.test({
  name: "ClipBpeTokenizer.encode matches clip_scorer input_ids and attention_mask (EOT padding, truncation)",
  ignore: !hasFixtures(VOCAB, CLIP_EXPECTED),
  fn: async () => {
    const tok = await tokenizer();
    const expected = JSON.parse(await Deno.readTextFile(CLIP_EXPECTED));
    for (const p of expected.prompts as { text: string; input_ids: number[]; attention_mask: number[] }[]) {
      const len = p.input_ids.length;
      const e = tok.encode(p.text, { contextLength: len, padId: tok.eotId });
      assertEquals(e.inputIds, p.input_ids, `input_ids of ${JSON.stringify(p.text.slice(0, 40))}`);
      assertEquals(
        e.attentionMask,
        p.attention_mask,
        `attention_mask of ${JSON.stringify(p.text.slice(0, 40))}`,
      );
    }
  },
});

Deno.test({
  name: "ClipBpeTokenizer truncation keeps SOT first and EOT last; specials in text map to their ids",
  ignore: !hasFixtures(VOCAB),
  fn: async () => {
    const tok = await tokenizer();
    const long = "a photo of a cat ".repeat(40);
    const e = tok.encode(long, { contextLength: 77, padId: 0 });
    assertEquals(e.inputIds.length, 77);
    assertEquals(e.inputIds[0], 49406);
    assertEquals(e.inputIds[76], 49407);
    assert(e.attentionMask.every((m) => m === 1), "full mask for a truncated prompt");
    assertEquals(tok.bpeIds("<end_of_text>"), [49407]);
    // Same ids whatever the case or extra whitespace, and &amp; is unescaped (twice: &amp;amp; too).
    assertEquals(tok.bpeIds("A  PHOTO\tof a CAT"), tok.bpeIds("a photo of a cat"));
    assertEquals(tok.bpeIds("cats &amp;amp; dogs"), tok.bpeIds("cats & dogs"));
    assertEquals(tok.bpeIds("don\u2019t"), tok.bpeIds("don't"));
    assertThrows(() => tok.encode("x", { contextLength: 1 }), InvalidArgumentError, "contextLength");
    assertThrows(() => tok.encode("x", { padId: 50000 }), InvalidArgumentError, "padId");
  },
});

Deno.test("bytesToUnicode maps 256 bytes to distinct printable code points", () => {
  const m = bytesToUnicode();
  assertEquals(m.size, 256);
  assertEquals(new Set(m.values()).size, 256);
  assertEquals(m.get("a".charCodeAt(0)), "a");
  assertEquals(m.get(0x20), "\u0120"); // space -> 'Ġ' (256 + 32)
});

Deno.test("htmlUnescape follows Python's html.unescape rules", () => {
  assertEquals(htmlUnescape("&lt;b&gt; &amp; &#65;&#x42;&#X43;"), "<b> & ABC");
  assertEquals(htmlUnescape("&ampx &notit; &notin;"), "&x \u00acit; \u2209");
  assertEquals(htmlUnescape("&#128;&#0;&#xD800;&#1;"), "\u20ac\ufffd\ufffd");
  assertEquals(htmlUnescape("&unknown; &"), "&unknown; &");
});

Deno.test("ftfyFixText: quotes, ligatures, width, C1 controls, control chars, NFC", () => {
  assertEquals(ftfyFixText("\u201cﬁne\u201d \u2018x\u2019"), "\"fine\" 'x'");
  assertEquals(ftfyFixText("\uff21\uff42\u3000c"), "Ab c");
  assertEquals(ftfyFixText("a\u0085b\u0093c\u0000d\u001b[31me"), 'a\u2026b"cde');
  assertEquals(ftfyFixText("e\u0301"), "\u00e9");
  assertEquals(clipCleanText("  Hello\n\tWORLD  "), "hello world");
});
