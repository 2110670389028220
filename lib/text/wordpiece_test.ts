import { assertEquals, assertThrows } from "../testing/assert.ts";
import { InvalidArgumentError } from "../errors.ts";
import { basicTokenize, WordPieceTokenizer } from "./wordpiece.ts";

// A tiny vocabulary in bert-base-uncased's layout: [PAD]=0, specials at the same relative places.
const VOCAB = [
  "[PAD]",
  "[unused0]",
  "[UNK]",
  "[CLS]",
  "[SEP]",
  "[MASK]",
  "a",
  "cat",
  "dog",
  "play",
  "##ing",
  "##s",
  "un",
  "##aff",
  "##able",
  "!",
  ",",
  ".",
  "'",
  "s",
  "cafe",
  "\u4e00",
  "\u732b",
  "hello",
  "world",
  "t",
  "don",
  "##t",
];
const id = (t: string) => VOCAB.indexOf(t);

function tok(options = {}) {
  return new WordPieceTokenizer(VOCAB, options);
}

Deno.test("basicTokenize lowercases, strips accents, splits punctuation and CJK, drops controls", () => {
  assertEquals(basicTokenize("Hello,World!"), ["hello", ",", "world", "!"]);
  assertEquals(basicTokenize("Caf\u00e9 \u00c9T\u00c9"), ["cafe", "ete"]);
  assertEquals(basicTokenize("a\u4e00\u732bb"), ["a", "\u4e00", "\u732b", "b"]);
  assertEquals(basicTokenize("a\u0000b\u200bc\tD\u00a0e"), ["abc", "d", "e"]);
  assertEquals(basicTokenize("don't"), ["don", "'", "t"]);
  assertEquals(basicTokenize("Caf\u00e9", false), ["Caf\u00e9"]);
  // '$' and '^' are ASCII punctuation by BERT's rule even though Unicode calls them symbols.
  assertEquals(basicTokenize("a$b^c"), ["a", "$", "b", "^", "c"]);
});

Deno.test("WordPiece: greedy longest match with ## continuations, [UNK] for uncovered words", () => {
  const t = tok();
  assertEquals(t.tokenize("unaffable cats playing"), [
    "un",
    "##aff",
    "##able",
    "cat",
    "##s",
    "play",
    "##ing",
  ]);
  // "dogz": "dog" matches but "##z" does not: the whole word is [UNK], not a partial.
  assertEquals(t.tokenize("dogz dog"), ["[UNK]", "dog"]);
  assertEquals(t.tokenize("a" + "s".repeat(100)), ["[UNK]"]);
});

Deno.test("encode frames [CLS] ... [SEP], pads with 0 to max_length and truncates", () => {
  const t = tok();
  const e = t.encode("A cat!", 8);
  assertEquals(e.inputIds, [id("[CLS]"), id("a"), id("cat"), id("!"), id("[SEP]"), 0, 0, 0]);
  assertEquals(e.attentionMask, [1, 1, 1, 1, 1, 0, 0, 0]);
  const long = t.encode("cat ".repeat(50), 35);
  assertEquals(long.inputIds.length, 35);
  assertEquals(long.inputIds[0], id("[CLS]"));
  assertEquals(long.inputIds[34], id("[SEP]"));
  assertEquals(long.inputIds.slice(1, 34), new Array(33).fill(id("cat")));
  assertEquals(long.attentionMask, new Array(35).fill(1));
  const empty = t.encode("", 4);
  assertEquals(empty.inputIds, [id("[CLS]"), id("[SEP]"), 0, 0]);
  assertThrows(() => t.encode("x", 1), InvalidArgumentError, "maxLength");
});

Deno.test("added special tokens are matched verbatim and get ids after the vocabulary", () => {
  const t = tok({ addedTokens: ["[DEC]", "[ENC]"] });
  assertEquals(t.idOf("[DEC]"), VOCAB.length);
  assertEquals(t.idOf("[ENC]"), VOCAB.length + 1);
  assertEquals(t.tokenize("[ENC]a CAT[DEC]"), ["[ENC]", "a", "cat", "[DEC]"]);
  // Without registration the brackets are punctuation and "enc" is unknown.
  assertEquals(tok().tokenize("[ENC]"), ["[UNK]", "[UNK]", "[UNK]"]);
  // Built-in specials typed in the text stay whole (case-sensitive, like transformers' trie).
  assertEquals(tok().tokenize("a[SEP]cat [sep]"), ["a", "[SEP]", "cat", "[UNK]", "[UNK]", "[UNK]"]);
});

Deno.test("a vocabulary without the special tokens is rejected naming the field", () => {
  assertThrows(() => new WordPieceTokenizer(["[PAD]", "a"]), InvalidArgumentError, "unk_token");
});

Deno.test("fromFile reads vocab.txt and tokenizer.json alike", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/vocab.txt`, VOCAB.join("\n") + "\n");
    const vocab: Record<string, number> = {};
    VOCAB.forEach((t, i) => (vocab[t] = i));
    await Deno.writeTextFile(
      `${dir}/tokenizer.json`,
      JSON.stringify({
        model: { type: "WordPiece", vocab },
        normalizer: { type: "BertNormalizer", lowercase: true },
        added_tokens: [{ id: VOCAB.length, content: "[DEC]" }],
      }),
    );
    const a = await WordPieceTokenizer.fromFile(`${dir}/vocab.txt`);
    const b = await WordPieceTokenizer.fromFile(`${dir}/tokenizer.json`);
    assertEquals(a.encode("Hello, world", 6), b.encode("Hello, world", 6));
    assertEquals(b.tokenize("x[DEC]"), ["[UNK]", "[DEC]"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
