/**
 * OpenAI CLIP's byte-level BPE tokenizer (`clip/simple_tokenizer.py`, copied by open_clip and
 * HPSv2), used by the SD text encoder, PickScore and HPSv2 (REWARDS.md "CLIP BPE tokenizer").
 *
 * Vocabulary from `bpe_simple_vocab_16e6.txt.gz`: the 256 byte symbols, the same with `</w>`,
 * the first 48,894 merges (lines 1..48894 of the file), then `<start_of_text>` (49406) and
 * `<end_of_text>` (49407). Text is cleaned as the reference does (text_clean.ts), split with the
 * reference regex, each piece UTF-8 encoded through the byte-to-unicode table and merged by rank.
 */

import { gunzipSync } from "node:zlib";
import { InvalidArgumentError } from "../errors.ts";
import { clipCleanText } from "./text_clean.ts";

export const SOT_TOKEN = "<start_of_text>";
export const EOT_TOKEN = "<end_of_text>";
/** Merges the reference keeps: `merges[1 : 49152 - 256 - 2 + 1]`. */
export const CLIP_MERGE_COUNT = 49152 - 256 - 2;

/** GPT-2/CLIP `bytes_to_unicode`: byte value -> printable code point, in the reference's order. */
export function bytesToUnicode(): Map<number, string> {
  const bs: number[] = [];
  for (let b = "!".charCodeAt(0); b <= "~".charCodeAt(0); b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n);
      n++;
    }
  }
  return new Map(bs.map((b, i) => [b, String.fromCodePoint(cs[i])]));
}

/** The merges the reference keeps (lines 1..CLIP_MERGE_COUNT of the vocabulary file), in rank order. */
export function clipMerges(mergesText: string): [string, string][] {
  const lines = mergesText.split("\n");
  if (lines.length < CLIP_MERGE_COUNT + 1) {
    throw new InvalidArgumentError(
      "bpe vocabulary",
      `expected at least ${CLIP_MERGE_COUNT + 1} lines (header + merges), got ${lines.length}`,
    );
  }
  return lines.slice(1, CLIP_MERGE_COUNT + 1).map((l, i) => {
    const parts = l.split(/\s+/).filter((p) => p.length > 0);
    if (parts.length !== 2) {
      throw new InvalidArgumentError(
        "bpe vocabulary",
        `line ${i + 2}: expected two symbols, got ${JSON.stringify(l)}`,
      );
    }
    return parts as [string, string];
  });
}

/**
 * The symbols by id: the 256 byte symbols, the same with `</w>`, one per merge, then SOT and EOT
 * (`<start_of_text>`, `<end_of_text>`).
 */
export function clipVocabulary(merges: readonly (readonly [string, string])[]): string[] {
  const vocab: string[] = [...bytesToUnicode().values()];
  for (const v of [...vocab]) vocab.push(v + "</w>");
  for (const [a, b] of merges) vocab.push(a + b);
  vocab.push(SOT_TOKEN, EOT_TOKEN);
  return vocab;
}

// The reference pattern, with `\s` as the `regex` module's Unicode White_Space; flags: IGNORECASE.
const TOKEN_RE =
  /<start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\p{White_Space}\p{L}\p{N}]+/giu;

export interface ClipEncodeOptions {
  /** Sequence length (77 for every CLIP model). */
  contextLength?: number;
  /** Id written after EOT: 49407 for SD1.5 and `openai/clip-*`, 0 for open_clip/laion (HPSv2, PickScore). */
  padId?: number;
}

export interface EncodedText {
  inputIds: number[];
  /** 1 up to and including the first EOT, 0 after (HF CLIPTokenizer's mask). */
  attentionMask: number[];
}

/** Bounded memo of BPE results (the reference's cache is unbounded; a server must not grow forever). */
const CACHE_LIMIT = 200_000;

export class ClipBpeTokenizer {
  readonly #encoder = new Map<string, number>();
  readonly #ranks = new Map<string, number>();
  readonly #byteEncoder: string[];
  readonly #cache = new Map<string, string[]>();
  readonly sotId: number;
  readonly eotId: number;
  readonly vocabSize: number;

  /** Builds the tokenizer from the decompressed text of `bpe_simple_vocab_16e6.txt`. */
  constructor(mergesText: string) {
    const merges = clipMerges(mergesText);
    const b2u = bytesToUnicode();
    this.#byteEncoder = Array.from({ length: 256 }, (_, b) => b2u.get(b)!);
    const vocab = clipVocabulary(merges);
    vocab.forEach((tok, id) => this.#encoder.set(tok, id));
    merges.forEach(([a, b], rank) => this.#ranks.set(`${a} ${b}`, rank));
    this.sotId = this.#encoder.get(SOT_TOKEN)!;
    this.eotId = this.#encoder.get(EOT_TOKEN)!;
    this.vocabSize = vocab.length;
  }

  /** Reads a gzip-compressed (`.gz`) or plain merges file. */
  static async fromFile(path: string): Promise<ClipBpeTokenizer> {
    const raw = await Deno.readFile(path);
    const isGzip = raw.length >= 2 && raw[0] === 0x1f && raw[1] === 0x8b;
    const text = new TextDecoder("utf-8", { fatal: true }).decode(isGzip ? gunzipSync(raw) : raw);
    return new ClipBpeTokenizer(text);
  }

  /** `SimpleTokenizer.bpe`: the merged symbols of one byte-encoded piece. */
  #bpe(token: string): string[] {
    const cached = this.#cache.get(token);
    if (cached) return cached;
    const chars = [...token];
    let word = [...chars.slice(0, -1), chars[chars.length - 1] + "</w>"];
    if (word.length > 1) {
      for (;;) {
        let best = -1;
        let bestRank = Infinity;
        for (let i = 0; i < word.length - 1; i++) {
          const r = this.#ranks.get(`${word[i]} ${word[i + 1]}`);
          if (r !== undefined && r < bestRank) {
            bestRank = r;
            best = i;
          }
        }
        if (best < 0) break;
        const first = word[best], second = word[best + 1];
        // The reference merges every occurrence of the pair, scanning left to right.
        const next: string[] = [];
        let i = 0;
        while (i < word.length) {
          const j = word.indexOf(first, i);
          if (j < 0) {
            next.push(...word.slice(i));
            break;
          }
          next.push(...word.slice(i, j));
          i = j;
          if (word[i] === first && i < word.length - 1 && word[i + 1] === second) {
            next.push(first + second);
            i += 2;
          } else {
            next.push(word[i]);
            i += 1;
          }
        }
        word = next;
        if (word.length === 1) break;
      }
    }
    if (this.#cache.size >= CACHE_LIMIT) this.#cache.clear();
    this.#cache.set(token, word);
    return word;
  }

  /** BPE ids of `text` without SOT/EOT, after the reference's cleaning. */
  bpeIds(text: string): number[] {
    const ids: number[] = [];
    const utf8 = new TextEncoder();
    for (const match of clipCleanText(text).matchAll(TOKEN_RE)) {
      const piece = match[0];
      if (piece === SOT_TOKEN || piece === EOT_TOKEN) {
        ids.push(this.#encoder.get(piece)!);
        continue;
      }
      let encoded = "";
      for (const b of utf8.encode(piece)) encoded += this.#byteEncoder[b];
      for (const sym of this.#bpe(encoded)) {
        const id = this.#encoder.get(sym);
        if (id === undefined) {
          throw new Error(`clip_bpe: symbol ${JSON.stringify(sym)} is not in the vocabulary`);
        }
        ids.push(id);
      }
    }
    return ids;
  }

  /**
   * `[SOT] + bpe(text)[:contextLength-2] + [EOT]`, padded with `padId` to `contextLength`
   * (truncation keeps SOT first and EOT last, like `open_clip.tokenize` and HF truncation).
   */
  encode(text: string, { contextLength = 77, padId = this.eotId }: ClipEncodeOptions = {}): EncodedText {
    if (!Number.isInteger(contextLength) || contextLength < 2) {
      throw new InvalidArgumentError("contextLength", `must be an integer >= 2, got ${contextLength}`);
    }
    if (!Number.isInteger(padId) || padId < 0 || padId >= this.vocabSize) {
      throw new InvalidArgumentError("padId", `must be an id in [0, ${this.vocabSize}), got ${padId}`);
    }
    const body = this.bpeIds(text).slice(0, contextLength - 2);
    const inputIds = [this.sotId, ...body, this.eotId];
    const attentionMask = inputIds.map(() => 1);
    while (inputIds.length < contextLength) {
      inputIds.push(padId);
      attentionMask.push(0);
    }
    return { inputIds, attentionMask };
  }

  /** Encodes a batch as row-major [N, contextLength] arrays. */
  encodeBatch(
    texts: string[],
    options: ClipEncodeOptions = {},
  ): { inputIds: number[]; attentionMask: number[] } {
    const inputIds: number[] = [];
    const attentionMask: number[] = [];
    for (const t of texts) {
      const e = this.encode(t, options);
      inputIds.push(...e.inputIds);
      attentionMask.push(...e.attentionMask);
    }
    return { inputIds, attentionMask };
  }
}
