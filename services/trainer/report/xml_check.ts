/**
 * A strict-enough well-formedness check for the SVG and HTML the report writes (tests only):
 * every element opened is closed in order, attributes are quoted, no stray `<` or `&`.
 * HTML void elements (img, meta, br, ...) need no closing tag when `html` is set.
 */

const VOID_HTML = new Set([
  "area",
  "base",
  "br",
  "col",
  "embed",
  "hr",
  "img",
  "input",
  "link",
  "meta",
  "source",
  "track",
  "wbr",
]);

/** Returns a list of problems (empty when well-formed); counts elements by name in `counts`. */
export function checkMarkup(
  text: string,
  options: { html?: boolean } = {},
): { problems: string[]; counts: Map<string, number> } {
  const problems: string[] = [];
  const counts = new Map<string, number>();
  const stack: string[] = [];
  const body = text.replace(/^<\?xml[^>]*\?>/, "").replace(/^<!DOCTYPE[^>]*>/i, "");
  const tag = /<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+(?:="[^"<]*")?)*)\s*(\/?)>/y;
  let i = 0;
  let textStart = 0;
  const checkText = (s: string) => {
    if (s.includes("<")) problems.push(`stray "<" near ${JSON.stringify(s.slice(0, 40))}`);
    for (const m of s.matchAll(/&(?!(?:[a-zA-Z]+|#\d+|#x[0-9a-fA-F]+);)/g)) {
      problems.push(
        `unescaped "&" near ${JSON.stringify(s.slice(Math.max(0, m.index! - 10), m.index! + 20))}`,
      );
    }
  };
  while (i < body.length) {
    const lt = body.indexOf("<", i);
    if (lt < 0) break;
    if (body.startsWith("<!--", lt)) {
      const end = body.indexOf("-->", lt);
      if (end < 0) {
        problems.push("unclosed comment");
        break;
      }
      i = end + 3;
      continue;
    }
    checkText(body.slice(textStart, lt));
    tag.lastIndex = lt;
    const m = tag.exec(body);
    if (!m) {
      problems.push(`malformed tag at ${lt}: ${JSON.stringify(body.slice(lt, lt + 40))}`);
      i = lt + 1;
      textStart = i;
      continue;
    }
    const [, closing, rawName, , selfClosing] = m;
    const name = rawName.toLowerCase();
    if (closing) {
      const open = stack.pop();
      if (open !== name) problems.push(`</${name}> closes <${open ?? "nothing"}>`);
    } else {
      counts.set(name, (counts.get(name) ?? 0) + 1);
      const isVoid = options.html && VOID_HTML.has(name);
      if (!selfClosing && !isVoid) stack.push(name);
      // Raw-text elements: skip to their end tag.
      if (options.html && (name === "style" || name === "script") && !selfClosing) {
        const end = body.indexOf(`</${name}>`, tag.lastIndex);
        if (end < 0) problems.push(`unclosed <${name}>`);
        i = end < 0 ? body.length : end;
        textStart = i;
        continue;
      }
    }
    i = tag.lastIndex;
    textStart = i;
  }
  checkText(body.slice(textStart));
  if (stack.length) problems.push(`unclosed: ${stack.join(", ")}`);
  return { problems, counts };
}
