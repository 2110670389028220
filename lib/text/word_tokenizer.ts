/**
 * The word-level tokenizer of the project's embedded model (issue 7): lowercased words split on
 * whitespace and punctuation, looked up in a fixed vocabulary, framed as BOS ... EOS and padded
 * with EOS to a fixed length, the way SD1.5 pads CLIP tokens (so the text encoder's causal mask and
 * EOS pooling work unchanged). Stored as `tokenizer/tokenizer_config.json` in the model folder.
 */

export interface WordTokenizerConfig {
  type: "word";
  /** Token strings in id order; ids 0..3 are the specials below. */
  vocab: string[];
  max_length: number;
  bos_token: string;
  eos_token: string;
  unk_token: string;
  pad_token: string;
}

export const SPECIALS = { pad: "<pad>", bos: "<bos>", eos: "<eos>", unk: "<unk>" } as const;

/** Builds a config whose vocabulary is the specials followed by `words` (deduplicated, in order). */
export function makeWordTokenizerConfig(words: string[], maxLength: number): WordTokenizerConfig {
  const vocab: string[] = [SPECIALS.pad, SPECIALS.bos, SPECIALS.eos, SPECIALS.unk];
  for (const w of words) if (!vocab.includes(w)) vocab.push(w);
  return {
    type: "word",
    vocab,
    max_length: maxLength,
    bos_token: SPECIALS.bos,
    eos_token: SPECIALS.eos,
    unk_token: SPECIALS.unk,
    pad_token: SPECIALS.pad,
  };
}

export class WordTokenizer {
  readonly #ids = new Map<string, number>();
  readonly bosId: number;
  readonly eosId: number;
  readonly unkId: number;
  readonly maxLength: number;

  constructor(readonly config: WordTokenizerConfig) {
    if (config.type !== "word") {
      throw new Error(`tokenizer: type must be "word", got ${JSON.stringify(config.type)}`);
    }
    if (!Number.isInteger(config.max_length) || config.max_length < 2) {
      throw new Error(`tokenizer: max_length must be an integer >= 2, got ${config.max_length}`);
    }
    config.vocab.forEach((w, i) => this.#ids.set(w, i));
    const need = (name: keyof typeof SPECIALS, tok: string) => {
      const id = this.#ids.get(tok);
      if (id === undefined) {
        throw new Error(`tokenizer: ${name} token ${JSON.stringify(tok)} is not in the vocabulary`);
      }
      return id;
    };
    this.bosId = need("bos", config.bos_token);
    this.eosId = need("eos", config.eos_token);
    this.unkId = need("unk", config.unk_token);
    need("pad", config.pad_token);
    this.maxLength = config.max_length;
  }

  get vocabSize(): number {
    return this.config.vocab.length;
  }

  /** Lowercased words and punctuation marks, in order. */
  static split(text: string): string[] {
    return text.toLowerCase().match(/[\p{L}\p{N}]+|[^\s\p{L}\p{N}]/gu) ?? [];
  }

  /** BOS + ids (truncated so EOS stays at index max_length - 1 at the latest) + EOS, padded with EOS. */
  encode(text: string): Int32Array {
    const ids = new Int32Array(this.maxLength).fill(this.eosId);
    ids[0] = this.bosId;
    const words = WordTokenizer.split(text).slice(0, this.maxLength - 2);
    words.forEach((w, i) => (ids[i + 1] = this.#ids.get(w) ?? this.unkId));
    ids[words.length + 1] = this.eosId;
    return ids;
  }

  /** Inverse of encode for ids between BOS and the first EOS (for logs and tests). */
  decode(ids: ArrayLike<number>): string {
    const out: string[] = [];
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (id === this.bosId) continue;
      if (id === this.eosId) break;
      out.push(this.config.vocab[id] ?? this.config.unk_token);
    }
    return out.join(" ");
  }
}
