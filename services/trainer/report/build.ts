/**
 * Builds a run's report from its folder: reads metrics.jsonl, writes the charts (SVG and PNG), the
 * evaluation table (Markdown and CSV), the sample grid when images are given, and report.html.
 *
 *   <run>/report.html
 *   <run>/report/{reward,log_ratios,loss}.{svg,png}
 *   <run>/report/eval.md, eval.csv, grid.png
 */
import { join } from "node:path";
import { type MetricsRecord, readMetrics, summarizeMetrics } from "../metrics.ts";
import { renderSampleGrid, type SampleGridInput } from "./grid.ts";
import { renderReportHtml, type ReportFigure, type ReportLink } from "./html.ts";
import { trainingCharts } from "./plot.ts";
import { svgToPng } from "./svg.ts";
import { evalTableCsv, evalTableFromMetrics, evalTableMarkdown } from "./table.ts";

export const METRICS_FILE = "metrics.jsonl";
export const REPORT_FILE = "report.html";
export const REPORT_DIR = "report";

export interface BuildReportOptions {
  title?: string;
  /** Resolved config text (e.g. canonical JSON, pretty-printed) and its hash. */
  configText?: string;
  configHash?: string;
  /** Extra summary rows (method, total steps, wall time...), shown before the metric summary. */
  summary?: ReadonlyArray<readonly [string, string | number]>;
  /** The sample grid (e.g. eval prompts x samples of base and tuned). */
  grid?: SampleGridInput;
  /** Metrics instead of reading <run>/metrics.jsonl. */
  records?: readonly MetricsRecord[];
  /** Also write PNG versions of the charts (default true). */
  chartPngs?: boolean;
}

export interface BuiltReport {
  /** report.html's path. */
  html: string;
  /** Every file written, relative to the run folder. */
  files: string[];
}

export async function buildReport(runDir: string, options: BuildReportOptions = {}): Promise<BuiltReport> {
  const records = options.records ?? (await readMetrics(join(runDir, METRICS_FILE)));
  await Deno.mkdir(join(runDir, REPORT_DIR), { recursive: true });
  const files: string[] = [];
  const write = async (rel: string, data: string | Uint8Array) => {
    const path = join(runDir, rel);
    if (typeof data === "string") await Deno.writeTextFile(path, data);
    else await Deno.writeFile(path, data);
    files.push(rel);
  };

  const charts = trainingCharts(records);
  const chartFigures: ReportFigure[] = [];
  const chartList: Array<[string, string, string]> = [
    ["reward", "Reward", charts.reward],
    ["log_ratios", "h_w and h_l (RDPO_SPEC.md section 6)", charts.logRatios],
    ["loss", "Loss", charts.loss],
  ];
  for (const [name, title, svg] of chartList) {
    await write(`${REPORT_DIR}/${name}.svg`, svg);
    if (options.chartPngs ?? true) await write(`${REPORT_DIR}/${name}.png`, await svgToPng(svg));
    chartFigures.push({ title, src: `${REPORT_DIR}/${name}.svg` });
  }

  const table = evalTableFromMetrics(records);
  const links: ReportLink[] = [];
  if (table.rows.length) {
    await write(`${REPORT_DIR}/eval.md`, evalTableMarkdown(table));
    await write(`${REPORT_DIR}/eval.csv`, evalTableCsv(table));
    links.push({ label: "evaluation table (CSV)", href: `${REPORT_DIR}/eval.csv` });
    links.push({ label: "evaluation table (Markdown)", href: `${REPORT_DIR}/eval.md` });
  }

  let grid: ReportFigure | undefined;
  if (options.grid) {
    await write(`${REPORT_DIR}/grid.png`, await renderSampleGrid(options.grid));
    grid = { title: options.grid.title ?? "Samples", src: `${REPORT_DIR}/grid.png` };
  }
  try {
    await Deno.stat(join(runDir, METRICS_FILE));
    links.push({ label: "per-step metrics (JSONL)", href: METRICS_FILE });
  } catch { /* metrics passed in, no file */ }

  const s = summarizeMetrics(records);
  const summary: Array<readonly [string, string | number]> = [
    ...(options.summary ?? []),
    ["steps logged", s.steps],
    ["last step", s.last_step],
    [`loss (mean of last ${s.window})`, s.loss],
    [`h_w (mean of last ${s.window})`, s.h_w],
    [`h_l (mean of last ${s.window})`, s.h_l],
    [`pair accuracy (mean of last ${s.window})`, s.accuracy],
    [`mean reward (mean of last ${s.window})`, s.mean_reward],
    ["pairs trained", s.pairs_total],
    ["ties skipped", s.skipped_ties_total],
    ["mean step seconds", s.mean_step_seconds],
  ];
  const html = renderReportHtml({
    title: options.title ?? "Training run report",
    summary,
    table,
    grid,
    charts: chartFigures,
    links,
    configText: options.configText,
    configHash: options.configHash,
  });
  await write(REPORT_FILE, html);
  return { html: join(runDir, REPORT_FILE), files };
}
