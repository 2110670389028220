import { assertEquals, assertThrows } from "../testing/assert.ts";
import { makeWordTokenizerConfig, WordTokenizer } from "./word_tokenizer.ts";

const tok = new WordTokenizer(makeWordTokenizerConfig(["a", "red", "circle", "on", "blue", "background"], 8));

Deno.test("word tokenizer: BOS, ids, EOS, padded with EOS", () => {
  const ids = [...tok.encode("A red  circle")];
  assertEquals(ids, [tok.bosId, 4, 5, 6, tok.eosId, tok.eosId, tok.eosId, tok.eosId]);
  assertEquals(tok.decode(ids), "a red circle");
});

Deno.test("word tokenizer: unknown words map to <unk>; truncation keeps EOS last", () => {
  assertEquals(tok.encode("a green circle")[2], tok.unkId);
  const ids = tok.encode("a red circle on a blue background on a red circle");
  assertEquals(ids.length, 8);
  assertEquals(ids[7], tok.eosId);
  assertEquals([...ids.subarray(1, 7)], [4, 5, 6, 7, 4, 8]); // six words survive, the rest is cut
});

Deno.test("word tokenizer: invalid configs are rejected naming the problem", () => {
  const bad = { ...makeWordTokenizerConfig(["x"], 4), eos_token: "</s>" };
  assertThrows(() => new WordTokenizer(bad), Error, "eos token");
  assertThrows(() => new WordTokenizer({ ...makeWordTokenizerConfig(["x"], 1) }), Error, "max_length");
});
