import sharp from "sharp";
import { join } from "node:path";
import { assert, assertEquals } from "../../../lib/testing/assert.ts";
import { appendMetrics, type StepMetrics } from "../metrics.ts";
import { buildReport, REPORT_FILE } from "./build.ts";
import { localLinks, renderReportHtml } from "./html.ts";
import { isPng } from "./svg.ts";
import { discImage } from "./test_images.ts";
import { checkMarkup } from "./xml_check.ts";

function step(s: number): StepMetrics {
  return {
    type: "step",
    step: s,
    time: "2026-01-01T00:00:00.000Z",
    loss: Math.LN2 - s / 100,
    h_w: s / 1000,
    h_l: -s / 4000,
    accuracy: 0.5 + s / 100,
    reward_margin: 0.2,
    pairs: 10,
    skipped_ties: s === 3 ? 2 : 0,
    mean_reward: 5 + s / 10,
    step_seconds: 3,
    wire_ms: 20,
    phases: { sample: 2000, score: 500, train: 500 },
  };
}

Deno.test("report html: escaped, well-formed, with every section", () => {
  const html = renderReportHtml({
    title: "run <a&b>",
    generatedAt: "2026-01-01T00:00:00Z",
    summary: [["method", "rdpo"], ["lambda", 100], ["h_l", -0.000123456], ["nan", NaN]],
    table: {
      scorers: ["aesthetic"],
      rows: [{ model: "base", step: 0, values: { aesthetic: { mean: 5.5, std: 0.1, count: 5 } } }],
    },
    grid: { title: "Samples", src: "report/grid.png" },
    charts: [{ title: "Loss", src: "report/loss.svg", caption: "per step" }],
    links: [{ label: "metrics", href: "metrics.jsonl" }, { label: "paper", href: "https://arxiv.org/" }],
    configText: `{"note": "<script>"}`,
    configHash: "ab".repeat(32),
  });
  const { problems, counts } = checkMarkup(html, { html: true });
  assertEquals(problems, []);
  assert(html.includes("<title>run &lt;a&amp;b&gt;</title>"));
  assert(html.includes("&quot;note&quot;: &quot;&lt;script&gt;&quot;"));
  assert(!html.includes("<script>"));
  assert(html.includes("<td>-1.235e-4</td>"), "small numbers in exponent form");
  assert(html.includes("5.500"));
  assertEquals(counts.get("img"), 2);
  assertEquals(localLinks(html), ["report/grid.png", "report/loss.svg", "metrics.jsonl"]);
});

Deno.test("report build: every file is written, valid, and every link resolves", async () => {
  const run = await Deno.makeTempDir({ prefix: "report_test_" });
  const metrics = join(run, "metrics.jsonl");
  await appendMetrics(metrics, {
    type: "eval",
    step: 0,
    time: "",
    model: "base",
    rewards: { aesthetic: { mean: 5.2, std: 0.3, count: 10 }, hpsv2: { mean: 27.1, std: 0.5, count: 10 } },
  });
  for (let s = 1; s <= 12; s++) await appendMetrics(metrics, step(s));
  await appendMetrics(metrics, {
    type: "eval",
    step: 12,
    time: "",
    model: "policy",
    rewards: { aesthetic: { mean: 5.9, std: 0.3, count: 10 }, hpsv2: { mean: 27.4, std: 0.5, count: 10 } },
  });
  const images = [0, 1].map((r) => [0, 1, 2].map((c) => discImage(32, r * 120 + c * 40)));
  const built = await buildReport(run, {
    title: "rdpo on animals",
    configText: JSON.stringify({ method: "rdpo" }, null, 2),
    configHash: "0".repeat(64),
    summary: [["method", "rdpo"]],
    grid: {
      images,
      rowLabels: ["cat", "dog"],
      columnLabels: ["base", "tuned 1", "tuned 2"],
      cellSize: 48,
      title: "Samples",
    },
  });
  assertEquals(built.html, join(run, REPORT_FILE));
  assertEquals(built.files.sort(), [
    "report.html",
    "report/eval.csv",
    "report/eval.md",
    "report/grid.png",
    "report/log_ratios.png",
    "report/log_ratios.svg",
    "report/loss.png",
    "report/loss.svg",
    "report/reward.png",
    "report/reward.svg",
  ]);
  for (const rel of built.files.filter((f) => f.endsWith(".png"))) {
    const bytes = await Deno.readFile(join(run, rel));
    assert(isPng(bytes), `${rel} has the PNG signature`);
    const meta = await sharp(join(run, rel)).metadata();
    assert(
      meta.format === "png" && meta.width! > 50 && meta.height! > 50,
      `${rel}: ${meta.width}x${meta.height}`,
    );
  }
  for (const rel of built.files.filter((f) => f.endsWith(".svg"))) {
    assertEquals(checkMarkup(await Deno.readTextFile(join(run, rel))).problems, [], rel);
  }
  const html = await Deno.readTextFile(built.html);
  assertEquals(checkMarkup(html, { html: true }).problems, []);
  const links = localLinks(html);
  assert(links.includes("report/grid.png") && links.includes("metrics.jsonl"), links.join(","));
  for (const href of links) await Deno.stat(join(run, href));
  assert(html.includes("5.900"), "tuned aesthetic in the table");
  const md = await Deno.readTextFile(join(run, "report/eval.md"));
  assert(md.includes("| change |  | +0.700 | +0.300 |"), md);
  await Deno.remove(run, { recursive: true });
});

Deno.test("report build: a run without metrics still gets a page", async () => {
  const run = await Deno.makeTempDir({ prefix: "report_test_" });
  const built = await buildReport(run, { chartPngs: false });
  const html = await Deno.readTextFile(built.html);
  assertEquals(checkMarkup(html, { html: true }).problems, []);
  assertEquals(built.files.sort(), [
    "report.html",
    "report/log_ratios.svg",
    "report/loss.svg",
    "report/reward.svg",
  ]);
  await Deno.remove(run, { recursive: true });
});
