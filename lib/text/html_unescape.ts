/**
 * A port of Python's `html.unescape` (HTML5 named and numeric character references, including the
 * standard's rules for references without a semicolon and for invalid code points). CLIP's
 * tokenizers call it twice in `basic_clean`, so prompts with `&amp;` etc. tokenize as the reference
 * does. The entity table is Python's `html.entities.html5`, stored in html_entities.json.
 */

import table from "./html_entities.json" with { type: "json" };

const HTML5: Record<string, string> = table.html5;
const INVALID_CHARREFS: Record<string, string> = table.invalidCharrefs;
const INVALID_CODEPOINTS = new Set<number>(table.invalidCodepoints);

// Python: r'&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)'
const CHARREF = /&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)/gu;

function replaceCharref(s: string): string {
  if (s[0] === "#") {
    const digits = s[1] === "x" || s[1] === "X" ? s.slice(2) : s.slice(1);
    const trimmed = digits.endsWith(";") ? digits.slice(0, -1) : digits;
    const radix = s[1] === "x" || s[1] === "X" ? 16 : 10;
    // Values beyond 2^53 are all out of range anyway; parseInt keeps their magnitude.
    const num = parseInt(trimmed, radix);
    const invalid = INVALID_CHARREFS[String(num)];
    if (invalid !== undefined) return invalid;
    if ((num >= 0xd800 && num <= 0xdfff) || num > 0x10ffff) return "\ufffd";
    if (INVALID_CODEPOINTS.has(num)) return "";
    return String.fromCodePoint(num);
  }
  if (Object.hasOwn(HTML5, s)) return HTML5[s];
  // The longest name that is a prefix (the standard's rule for references without ';').
  const cps = [...s];
  for (let x = cps.length - 1; x > 1; x--) {
    const prefix = cps.slice(0, x).join("");
    if (Object.hasOwn(HTML5, prefix)) return HTML5[prefix] + cps.slice(x).join("");
  }
  return "&" + s;
}

/** Python's `html.unescape(s)`. */
export function htmlUnescape(s: string): string {
  if (!s.includes("&")) return s;
  return s.replace(CHARREF, (_m, ref: string) => replaceCharref(ref));
}
