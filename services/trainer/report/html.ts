/**
 * `report.html` of a run: one self-describing page in the run folder with the summary numbers,
 * the evaluation table, the sample grid, the training curves (linked files, relative paths, so the
 * folder can be copied or served as is) and the resolved config.
 */
import type { EvalTable } from "./table.ts";
import { escapeXml } from "./svg.ts";

export interface ReportFigure {
  title: string;
  /** Path relative to report.html. */
  src: string;
  caption?: string;
}

export interface ReportLink {
  label: string;
  href: string;
}

export interface ReportInput {
  title: string;
  /** ISO time; default now. */
  generatedAt?: string;
  /** Label -> value rows of the summary table. */
  summary: ReadonlyArray<readonly [string, string | number]>;
  table?: EvalTable;
  grid?: ReportFigure;
  charts: readonly ReportFigure[];
  /** Other files worth a link (metrics.jsonl, eval.csv, checkpoints, ...). */
  links?: readonly ReportLink[];
  /** The resolved config, shown verbatim. */
  configText?: string;
  configHash?: string;
}

function formatValue(v: string | number): string {
  if (typeof v === "string") return v;
  if (!Number.isFinite(v)) return "-";
  if (Number.isInteger(v)) return String(v);
  return Math.abs(v) >= 1e-3 && Math.abs(v) < 1e6 ? String(Number(v.toPrecision(5))) : v.toExponential(3);
}

function tableHtml(table: EvalTable): string {
  const head = `<tr><th>model</th><th>step</th>${
    table.scorers.map((s) => `<th>${escapeXml(s)}</th>`).join("")
  }</tr>`;
  const rows = table.rows.map((r) =>
    `<tr><td>${escapeXml(r.model)}</td><td class="num">${r.step}</td>${
      table.scorers.map((s) => {
        const v = r.values[s];
        const text = v && Number.isFinite(v.mean)
          ? `${v.mean.toFixed(3)} <span class="std">&plusmn; ${v.std.toFixed(3)}</span>`
          : "-";
        return `<td class="num">${text}</td>`;
      }).join("")
    }</tr>`
  );
  return `<table class="eval">${head}${rows.join("")}</table>`;
}

function figureHtml(f: ReportFigure): string {
  return `<figure><img src="${escapeXml(f.src)}" alt="${escapeXml(f.title)}">` +
    `<figcaption>${escapeXml(f.title)}${
      f.caption ? ` &mdash; ${escapeXml(f.caption)}` : ""
    }</figcaption></figure>`;
}

/** The page as a string (pure). */
export function renderReportHtml(input: ReportInput): string {
  const generated = input.generatedAt ?? new Date().toISOString();
  const sections: string[] = [];
  sections.push(
    `<section><h2>Summary</h2><table class="summary">${
      input.summary.map(([k, v]) => `<tr><th>${escapeXml(k)}</th><td>${escapeXml(formatValue(v))}</td></tr>`)
        .join("")
    }</table></section>`,
  );
  if (input.table && input.table.rows.length) {
    sections.push(`<section><h2>Evaluation</h2>${tableHtml(input.table)}</section>`);
  }
  if (input.grid) sections.push(`<section><h2>Samples</h2>${figureHtml(input.grid)}</section>`);
  if (input.charts.length) {
    sections.push(
      `<section><h2>Training curves</h2><div class="charts">${
        input.charts.map(figureHtml).join("")
      }</div></section>`,
    );
  }
  if (input.links?.length) {
    sections.push(
      `<section><h2>Files</h2><ul>${
        input.links.map((l) => `<li><a href="${escapeXml(l.href)}">${escapeXml(l.label)}</a></li>`).join("")
      }</ul></section>`,
    );
  }
  if (input.configText) {
    sections.push(
      `<section><h2>Config</h2>${
        input.configHash ? `<p>config hash <code>${escapeXml(input.configHash)}</code></p>` : ""
      }` +
        `<pre>${escapeXml(input.configText)}</pre></section>`,
    );
  }
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeXml(input.title)}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; padding: 0 1rem; color: #222; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.2rem; border-bottom: 1px solid #ddd; padding-bottom: .2rem; }
table { border-collapse: collapse; margin: .5rem 0; } th, td { padding: .25rem .6rem; border: 1px solid #ddd; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; } .std { color: #888; font-size: .85em; }
figure { margin: .5rem 0; } img { max-width: 100%; border: 1px solid #eee; } figcaption { color: #555; font-size: .9rem; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(460px, 1fr)); gap: 1rem; }
pre { background: #f6f6f6; padding: .8rem; overflow-x: auto; font-size: .8rem; }
</style>
</head>
<body>
<h1>${escapeXml(input.title)}</h1>
<p class="generated">generated ${escapeXml(generated)}</p>
${sections.join("\n")}
</body>
</html>
`;
}

/** Every local link of a page (img src and a href that are not absolute URLs or anchors). */
export function localLinks(html: string): string[] {
  const out: string[] = [];
  for (const m of html.matchAll(/\s(?:src|href)="([^"]*)"/g)) {
    const raw = m[1].replace(/&amp;/g, "&").replace(/&quot;/g, '"').replace(/&#39;/g, "'");
    if (!/^([a-z]+:|#|\/\/)/i.test(raw)) out.push(raw);
  }
  return out;
}
