/**
 * The text cleaning CLIP's reference tokenizers apply before BPE (OpenAI `clip/simple_tokenizer.py`,
 * open_clip `tokenizer.py`): `basic_clean` = `ftfy.fix_text`, `html.unescape` twice, strip; then
 * `whitespace_clean` = collapse `\s+` to one space, strip; then lowercase.
 *
 * `ftfy.fix_text` is reproduced for its deterministic fixes, in ftfy 6's order and repeated until
 * nothing changes: C1 controls read as Windows-1252, Latin ligatures split, halfwidth/fullwidth
 * forms to standard width, curly quotes straightened, line breaks unified, lone surrogates replaced,
 * terminal escapes and control characters removed, NFC. Its mojibake detection (`fix_encoding`, a
 * heuristic over byte re-decodings) is not reproduced: text that is already valid Unicode, as
 * prompts are, is unchanged by it except in rare mis-decoded strings (e.g. "Ã©" for "é").
 */

import { htmlUnescape } from "./html_unescape.ts";

// Windows-1252 for 0x80-0x9F; ftfy's "sloppy" codec keeps the five undefined bytes as themselves.
const CP1252_C1 =
  "\u20ac\u0081\u201a\u0192\u201e\u2026\u2020\u2021\u02c6\u2030\u0160\u2039\u0152\u008d\u017d\u008f" +
  "\u0090\u2018\u2019\u201c\u201d\u2022\u2013\u2014\u02dc\u2122\u0161\u203a\u0153\u009d\u017e\u0178";

const LIGATURES: Record<string, string> = {
  "\u0132": "IJ",
  "\u0133": "ij",
  "\u0149": "\u02bcn",
  "\u01f1": "DZ",
  "\u01f2": "Dz",
  "\u01f3": "dz",
  "\u01c4": "D\u017d",
  "\u01c5": "D\u017e",
  "\u01c6": "d\u017e",
  "\u01c7": "LJ",
  "\u01c8": "Lj",
  "\u01c9": "lj",
  "\u01ca": "NJ",
  "\u01cb": "Nj",
  "\u01cc": "nj",
  "\ufb00": "ff",
  "\ufb01": "fi",
  "\ufb02": "fl",
  "\ufb03": "ffi",
  "\ufb04": "ffl",
  "\ufb05": "\u017ft",
  "\ufb06": "st",
};
const LIGATURE_RE = new RegExp(`[${Object.keys(LIGATURES).join("")}]`, "g");

/** ftfy `fix_character_width`: U+3000 and U+FF01..U+FFEF whose NFKC form differs. */
function fixCharacterWidth(text: string): string {
  return text.replace(/[\u3000\uff01-\uffef]/g, (ch) => (ch === "\u3000" ? " " : ch.normalize("NFKC")));
}

// ftfy CONTROL_CHARS: 00-08, 0B, 0E-1F, 7F, 206A-206F, FEFF, FFF9-FFFC.
// deno-lint-ignore no-control-regex -- these control characters are exactly what ftfy removes
const CONTROL_RE = /[\u0000-\u0008\u000b\u000e-\u001f\u007f\u206a-\u206f\ufeff\ufff9-\ufffc]/g;
// deno-lint-ignore no-control-regex -- ESC starts the terminal escapes ftfy removes
const ANSI_RE = /\u001b\[((?:\d|;)*)([a-zA-Z])/g;
const LONE_SURROGATE_RE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

function ftfyPass(text: string): string {
  text = text.replace(/[\u0080-\u009f]/g, (ch) => CP1252_C1[ch.charCodeAt(0) - 0x80]);
  text = text.replace(LIGATURE_RE, (ch) => LIGATURES[ch]);
  text = fixCharacterWidth(text);
  text = text.replace(/[\u201c-\u201f]/g, '"').replace(/[\u02bc\u2018-\u201b]/g, "'");
  text = text.replace(/\r\n/g, "\n").replace(/[\r\u2028\u2029\u0085]/g, "\n");
  text = text.replace(LONE_SURROGATE_RE, "\ufffd");
  text = text.replace(ANSI_RE, "");
  text = text.replace(CONTROL_RE, "");
  return text.normalize("NFC");
}

/** The deterministic part of `ftfy.fix_text` (see the module comment). */
export function ftfyFixText(text: string): string {
  for (let i = 0; i < 16; i++) {
    const fixed = ftfyPass(text);
    if (fixed === text) return fixed;
    text = fixed;
  }
  return text;
}

// Python's str.isspace() set, used by str.strip().
const PY_SPACE =
  "\\t\\n\\v\\f\\r\\u001c-\\u001f \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
const PY_STRIP_RE = new RegExp(`^[${PY_SPACE}]+|[${PY_SPACE}]+$`, "gu");

/** Python's `str.strip()` with no arguments. */
export function pyStrip(text: string): string {
  return text.replace(PY_STRIP_RE, "");
}

/** `basic_clean`: ftfy, `html.unescape(html.unescape(text))`, strip. */
export function basicClean(text: string): string {
  return pyStrip(htmlUnescape(htmlUnescape(ftfyFixText(text))));
}

/** `whitespace_clean`: the `regex` module's `\s+` (Unicode White_Space) to one space, strip. */
export function whitespaceClean(text: string): string {
  return pyStrip(text.replace(/\p{White_Space}+/gu, " "));
}

/** The full pre-BPE cleaning of OpenAI CLIP / open_clip: `whitespace_clean(basic_clean(t)).lower()`. */
export function clipCleanText(text: string): string {
  return whitespaceClean(basicClean(text)).toLowerCase();
}
