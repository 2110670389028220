/**
 * BERT WordPiece tokenizer with `bert-base-uncased` semantics (transformers' slow `BertTokenizer`,
 * which ImageReward's BLIP calls: REWARDS.md "imagereward"):
 *
 * BasicTokenizer: drop NUL/U+FFFD/control characters and map whitespace to spaces; put spaces around
 * CJK ideographs; NFC; split on whitespace; per word lowercase, strip accents (NFD, drop Mn), split
 * off every punctuation character. WordpieceTokenizer: greedy longest match first, continuation
 * pieces prefixed `##`, a word that cannot be covered (or is over 100 characters) becomes `[UNK]`.
 * Special tokens ([CLS], [SEP], [PAD], [UNK], [MASK]) and added ones (BLIP adds `[DEC]`, `[ENC]`)
 * typed in the text are matched verbatim (case-sensitive) before all that, as transformers does.
 * `encode` frames `[CLS] ... [SEP]`, truncates to `maxLength`, pads with `[PAD]`.
 */

import { InvalidArgumentError } from "../errors.ts";

export interface WordPieceOptions {
  /** Lowercase and strip accents (bert-base-uncased: true). */
  doLowerCase?: boolean;
  /** Tokens matched verbatim in the input before basic tokenization (e.g. BLIP's `[DEC]`, `[ENC]`). */
  addedTokens?: string[];
  unkToken?: string;
  clsToken?: string;
  sepToken?: string;
  padToken?: string;
  maxInputCharsPerWord?: number;
}

export interface WordPieceEncoded {
  inputIds: number[];
  attentionMask: number[];
}

function isControl(ch: string): boolean {
  if (ch === "\t" || ch === "\n" || ch === "\r") return false;
  return /^\p{C}$/u.test(ch);
}

function isWhitespace(ch: string): boolean {
  return ch === " " || ch === "\t" || ch === "\n" || ch === "\r" || /^\p{Zs}$/u.test(ch);
}

function isPunctuation(ch: string): boolean {
  const cp = ch.codePointAt(0)!;
  if (
    (cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) || (cp >= 123 && cp <= 126)
  ) {
    return true;
  }
  return /^\p{P}$/u.test(ch);
}

function isCjk(cp: number): boolean {
  return (cp >= 0x4e00 && cp <= 0x9fff) || (cp >= 0x3400 && cp <= 0x4dbf) ||
    (cp >= 0x20000 && cp <= 0x2a6df) || (cp >= 0x2a700 && cp <= 0x2b73f) ||
    (cp >= 0x2b740 && cp <= 0x2b81f) || (cp >= 0x2b820 && cp <= 0x2ceaf) ||
    (cp >= 0xf900 && cp <= 0xfaff) || (cp >= 0x2f800 && cp <= 0x2fa1f);
}

function whitespaceSplit(text: string): string[] {
  return text.trim().split(/[ \t\n\r\p{Zs}]+/u).filter((t) => t.length > 0);
}

/** transformers' `BasicTokenizer.tokenize` (tokenize_chinese_chars=True, strip_accents follows lowercase). */
export function basicTokenize(text: string, doLowerCase = true): string[] {
  let cleaned = "";
  for (const ch of text) {
    const cp = ch.codePointAt(0)!;
    if (cp === 0 || cp === 0xfffd || isControl(ch)) continue;
    if (isWhitespace(ch)) cleaned += " ";
    else if (isCjk(cp)) cleaned += ` ${ch} `;
    else cleaned += ch;
  }
  const out: string[] = [];
  for (let word of whitespaceSplit(cleaned.normalize("NFC"))) {
    if (doLowerCase) word = word.toLowerCase().normalize("NFD").replace(/\p{Mn}/gu, "");
    let current = "";
    for (const ch of word) {
      if (isPunctuation(ch)) {
        if (current) out.push(current);
        out.push(ch);
        current = "";
      } else {
        current += ch;
      }
    }
    if (current) out.push(current);
  }
  return out;
}

export class WordPieceTokenizer {
  readonly #vocab: Map<string, number>;
  readonly #options: Required<WordPieceOptions>;
  /** Tokens split out verbatim before basic tokenization, longest first. */
  readonly #verbatim: string[];
  readonly unkId: number;
  readonly clsId: number;
  readonly sepId: number;
  readonly padId: number;

  /** `vocab`: token strings in id order (vocab.txt lines). Added tokens not in it get the next ids. */
  constructor(vocab: string[], options: WordPieceOptions = {}) {
    this.#options = {
      doLowerCase: options.doLowerCase ?? true,
      addedTokens: options.addedTokens ?? [],
      unkToken: options.unkToken ?? "[UNK]",
      clsToken: options.clsToken ?? "[CLS]",
      sepToken: options.sepToken ?? "[SEP]",
      padToken: options.padToken ?? "[PAD]",
      maxInputCharsPerWord: options.maxInputCharsPerWord ?? 100,
    };
    this.#vocab = new Map();
    vocab.forEach((tok, i) => {
      if (!this.#vocab.has(tok)) this.#vocab.set(tok, i);
    });
    let next = vocab.length;
    for (const t of this.#options.addedTokens) if (!this.#vocab.has(t)) this.#vocab.set(t, next++);
    const need = (field: string, tok: string) => {
      const id = this.#vocab.get(tok);
      if (id === undefined) {
        throw new InvalidArgumentError(
          `tokenizer.${field}`,
          `${JSON.stringify(tok)} is not in the vocabulary`,
        );
      }
      return id;
    };
    this.unkId = need("unk_token", this.#options.unkToken);
    this.clsId = need("cls_token", this.#options.clsToken);
    this.sepId = need("sep_token", this.#options.sepToken);
    this.padId = need("pad_token", this.#options.padToken);
    // transformers never splits special tokens typed in the text (its tokens trie holds all of them).
    const o = this.#options;
    const specials = [o.unkToken, o.clsToken, o.sepToken, o.padToken, "[MASK]"].filter((t) =>
      this.#vocab.has(t)
    );
    this.#verbatim = [...new Set([...specials, ...o.addedTokens])].sort((a, b) => b.length - a.length);
  }

  /** Reads `vocab.txt` (one token per line) or a Hugging Face `tokenizer.json` (WordPiece model). */
  static async fromFile(path: string, options: WordPieceOptions = {}): Promise<WordPieceTokenizer> {
    const text = await Deno.readTextFile(path);
    if (path.endsWith(".json")) {
      const json = JSON.parse(text);
      const vocabObj = json?.model?.vocab;
      if (json?.model?.type !== "WordPiece" || typeof vocabObj !== "object" || vocabObj === null) {
        throw new InvalidArgumentError(path, 'model.type must be "WordPiece" with a model.vocab object');
      }
      const vocab: string[] = [];
      for (const [tok, id] of Object.entries(vocabObj as Record<string, number>)) vocab[id] = tok;
      const added: string[] = [];
      for (const a of (json.added_tokens ?? []) as { id: number; content: string }[]) {
        if (a.id >= vocab.length) vocab[a.id] = a.content;
        if (!["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"].includes(a.content)) added.push(a.content);
      }
      const lower = json?.normalizer?.lowercase;
      return new WordPieceTokenizer(vocab, {
        doLowerCase: typeof lower === "boolean" ? lower : true,
        addedTokens: added,
        ...options,
      });
    }
    const lines = text.split("\n");
    if (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
    return new WordPieceTokenizer(lines.map((l) => l.replace(/\r$/, "")), options);
  }

  get vocabSize(): number {
    return this.#vocab.size;
  }

  idOf(token: string): number | undefined {
    return this.#vocab.get(token);
  }

  /** `WordpieceTokenizer.tokenize` of one basic token. */
  #wordpiece(word: string): string[] {
    const chars = [...word];
    if (chars.length > this.#options.maxInputCharsPerWord) return [this.#options.unkToken];
    const pieces: string[] = [];
    let start = 0;
    while (start < chars.length) {
      let end = chars.length;
      let found: string | undefined;
      while (start < end) {
        let sub = chars.slice(start, end).join("");
        if (start > 0) sub = "##" + sub;
        if (this.#vocab.has(sub)) {
          found = sub;
          break;
        }
        end--;
      }
      if (found === undefined) return [this.#options.unkToken];
      pieces.push(found);
      start = end;
    }
    return pieces;
  }

  /** Token strings of `text` (no [CLS]/[SEP]). */
  tokenize(text: string): string[] {
    const verbatim = this.#verbatim;
    const segments: { text: string; special: boolean }[] = [];
    if (verbatim.length === 0) segments.push({ text, special: false });
    else {
      const escaped = verbatim.map((t) => t.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
      let last = 0;
      for (const m of text.matchAll(new RegExp(escaped.join("|"), "g"))) {
        segments.push({ text: text.slice(last, m.index), special: false }, { text: m[0], special: true });
        last = m.index! + m[0].length;
      }
      segments.push({ text: text.slice(last), special: false });
    }
    const out: string[] = [];
    for (const s of segments) {
      if (s.special) out.push(s.text);
      else for (const w of basicTokenize(s.text, this.#options.doLowerCase)) out.push(...this.#wordpiece(w));
    }
    return out;
  }

  /**
   * `tokenizer(text, padding="max_length", truncation=True, max_length=maxLength)`:
   * `[CLS] + tokens[:maxLength-2] + [SEP]`, padded with [PAD], mask 1 on real tokens.
   */
  encode(text: string, maxLength = 35): WordPieceEncoded {
    if (!Number.isInteger(maxLength) || maxLength < 2) {
      throw new InvalidArgumentError("maxLength", `must be an integer >= 2, got ${maxLength}`);
    }
    const ids = this.tokenize(text).slice(0, maxLength - 2).map((t) => this.#vocab.get(t) ?? this.unkId);
    const inputIds = [this.clsId, ...ids, this.sepId];
    const attentionMask = inputIds.map(() => 1);
    while (inputIds.length < maxLength) {
      inputIds.push(this.padId);
      attentionMask.push(0);
    }
    return { inputIds, attentionMask };
  }
}
