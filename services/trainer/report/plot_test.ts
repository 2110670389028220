import sharp from "sharp";
import { Buffer } from "node:buffer";
import { assert, assertEquals } from "../../../lib/testing/assert.ts";
import type { MetricsRecord, StepMetrics } from "../metrics.ts";
import { formatTick, lineChartSvg, niceTicks, trainingCharts } from "./plot.ts";
import { isPng, svgToPng } from "./svg.ts";
import { checkMarkup } from "./xml_check.ts";

Deno.test("plot: nice ticks are round and frame the range", () => {
  assertEquals(niceTicks(0, 1), [0, 0.2, 0.4, 0.6, 0.8, 1]);
  assertEquals(niceTicks(0.13, 0.87), [0, 0.2, 0.4, 0.6, 0.8, 1]);
  assertEquals(niceTicks(1, 100, 6), [0, 20, 40, 60, 80, 100]);
  assertEquals(niceTicks(-0.003, 0.012), [-0.005, 0, 0.005, 0.01, 0.015]);
  assertEquals(niceTicks(5, 5), [4.4, 4.6, 4.8, 5, 5.2, 5.4, 5.6]);
  assertEquals(niceTicks(0, 0), [-1, -0.5, 0, 0.5, 1]);
  assertEquals(niceTicks(NaN, 1), []);
});

Deno.test("plot: tick labels carry the decimals the spacing needs", () => {
  assertEquals(formatTick(0.005, 0.005), "0.005");
  assertEquals(formatTick(0.01, 0.005), "0.010");
  assertEquals(formatTick(20, 20), "20");
  assertEquals(formatTick(0.5, 0.5), "0.5");
  assertEquals(formatTick(0, 0.1), "0");
  assertEquals(formatTick(2e-5, 1e-5), "2.0e-5");
});

Deno.test("plot: the markup checker catches broken markup", () => {
  assertEquals(checkMarkup(`<svg><g><line/></g></svg>`).problems, []);
  assert(checkMarkup(`<svg><g></svg>`).problems.length > 0);
  assert(checkMarkup(`<svg><text>a < b</text></svg>`).problems.length > 0);
  assert(checkMarkup(`<svg><text>a & b</text></svg>`).problems.length > 0);
  assert(checkMarkup(`<svg><rect x=1/></svg>`).problems.length > 0);
});

Deno.test("plot: a line chart is well-formed SVG with axes, ticks, series, legend and zero line", async () => {
  const svg = lineChartSvg({
    title: "h_w & h_l <test>",
    xLabel: "step",
    yLabel: "h",
    zeroLine: true,
    series: [
      { name: "h_w", points: [[1, 0.01], [2, 0.02], [3, 0.015]] },
      { name: "h_l", points: [[1, 0.005], [2, NaN], [3, -0.004]], dashed: true },
    ],
  });
  const { problems, counts } = checkMarkup(svg);
  assertEquals(problems, []);
  assertEquals(counts.get("polyline"), 2);
  assert(svg.includes("h_w &amp; h_l &lt;test&gt;"));
  assert(svg.includes(`class="zero"`));
  assert((counts.get("text") ?? 0) >= 8, "ticks and labels");
  // The NaN point is left out of h_l's polyline.
  const lines = [...svg.matchAll(/<polyline points="([^"]+)"/g)].map((m) => m[1].split(" ").length);
  assertEquals(lines, [3, 2]);
  // librsvg parses it: a 640x360 chart at density 144 is 1280x720 pixels.
  const png = await svgToPng(svg);
  assert(isPng(png));
  const meta = await sharp(Buffer.from(png)).metadata();
  assertEquals([meta.width, meta.height], [1280, 720]);
});

Deno.test("plot: the zero line stays inside the plot when all values are positive", () => {
  const svg = lineChartSvg({ title: "t", zeroLine: true, series: [{ name: "a", points: [[0, 5], [1, 6]] }] });
  const y = Number(/class="zero" x1="[\d.]+" y1="([\d.]+)"/.exec(svg)![1]);
  const frame = /<rect x="(\d+)" y="(\d+)" width="(\d+)" height="(\d+)" fill="none"/.exec(svg)!.slice(1).map(
    Number,
  );
  assert(y >= frame[1] && y <= frame[1] + frame[3], `zero line y ${y} outside frame ${frame}`);
});

Deno.test("plot: an empty chart says so and is still valid", async () => {
  const svg = lineChartSvg({ title: "nothing", series: [{ name: "a", points: [] }] });
  assertEquals(checkMarkup(svg).problems, []);
  assert(svg.includes("no data"));
  assert(isPng(await svgToPng(svg, 72)));
});

Deno.test("plot: training charts from metrics records", () => {
  const step = (s: number): StepMetrics => ({
    type: "step",
    step: s,
    time: "",
    loss: Math.LN2 - s * 0.01,
    h_w: s * 1e-3,
    h_l: -s * 1e-4,
    accuracy: 0.6,
    reward_margin: 0.1,
    pairs: 10,
    skipped_ties: 0,
    mean_reward: 5 + s * 0.1,
    step_seconds: 1,
    wire_ms: 1,
    phases: {},
  });
  const records: MetricsRecord[] = [
    {
      type: "eval",
      step: 0,
      time: "",
      model: "base",
      rewards: { aesthetic: { mean: 5, std: 0.1, count: 5 } },
    },
    ...[1, 2, 3, 4, 5].map(step),
    {
      type: "eval",
      step: 5,
      time: "",
      model: "policy",
      rewards: { aesthetic: { mean: 5.6, std: 0.1, count: 5 } },
    },
  ];
  const charts = trainingCharts(records, 2);
  for (const svg of [charts.reward, charts.logRatios, charts.loss]) {
    assertEquals(checkMarkup(svg).problems, []);
  }
  assert(charts.logRatios.includes(`class="zero"`));
  assert(charts.reward.includes("eval aesthetic"));
  assertEquals([...charts.reward.matchAll(/<polyline/g)].length, 3);
  assertEquals([...charts.loss.matchAll(/<polyline/g)].length, 3);
});
