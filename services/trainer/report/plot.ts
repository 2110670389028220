/**
 * Line charts as plain SVG strings (no plotting library): axes with "nice" ticks and labels, one
 * polyline per series, a legend, and an optional y = 0 line (for the h_w / h_l curves of the
 * paper's Figure 1 / 3b: without the penalty h_l rises above 0, with it h_l stays at or below 0).
 * svgToPng (svg.ts) turns a chart into a PNG.
 */
import type { MetricsRecord } from "../metrics.ts";
import { evalRecords, evalSeries, movingAverage, stepSeries } from "../metrics.ts";
import { escapeXml, fitText } from "./svg.ts";

export interface Series {
  name: string;
  points: ReadonlyArray<readonly [number, number]>;
  color?: string;
  dashed?: boolean;
  /** Draw a dot at every point (for sparse series such as evaluations). */
  markers?: boolean;
  /** Stroke opacity (e.g. 0.35 for raw values under a smoothed line). */
  opacity?: number;
}

export interface LineChartOptions {
  title: string;
  series: readonly Series[];
  xLabel?: string;
  yLabel?: string;
  width?: number;
  height?: number;
  /** Draw the y = 0 line (and keep 0 inside the y range). */
  zeroLine?: boolean;
}

/** A colour-blind-friendly palette (Okabe-Ito). */
export const PALETTE = [
  "#0072B2",
  "#D55E00",
  "#009E73",
  "#CC79A7",
  "#E69F00",
  "#56B4E9",
  "#F0E442",
  "#000000",
];

/**
 * Round tick values (steps of 1, 2 or 5 x 10^k, about `maxTicks` of them) from the last tick at or
 * below `min` to the first at or above `max`.
 */
export function niceTicks(min: number, max: number, maxTicks = 6): number[] {
  if (!Number.isFinite(min) || !Number.isFinite(max)) return [];
  if (min === max) {
    const pad = min === 0 ? 1 : Math.abs(min) * 0.1;
    min -= pad;
    max += pad;
  }
  if (min > max) [min, max] = [max, min];
  const rough = (max - min) / Math.max(1, maxTicks - 1);
  const magnitude = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= rough) ?? 10 * magnitude;
  const first = Math.floor(min / step + 1e-9);
  const last = Math.ceil(max / step - 1e-9);
  const ticks: number[] = [];
  for (let k = first; k <= last; k++) ticks.push(Number((k * step).toPrecision(12)));
  return ticks;
}

/** Tick label with just enough decimals for the tick spacing. */
export function formatTick(value: number, step: number): string {
  if (value === 0) return "0";
  const abs = Math.abs(value);
  if (abs >= 1e5 || abs < 1e-4) return value.toExponential(1).replace("e+", "e");
  const decimals = Math.max(0, Math.min(6, -Math.floor(Math.log10(step) + 1e-9)));
  return value.toFixed(decimals);
}

interface Range {
  min: number;
  max: number;
}

function range(values: number[], includeZero: boolean): Range {
  let min = Math.min(...values);
  let max = Math.max(...values);
  if (includeZero) {
    min = Math.min(min, 0);
    max = Math.max(max, 0);
  }
  if (!Number.isFinite(min) || !Number.isFinite(max)) return { min: 0, max: 1 };
  if (min === max) {
    const pad = min === 0 ? 1 : Math.abs(min) * 0.1;
    return { min: min - pad, max: max + pad };
  }
  return { min, max };
}

/** Renders the chart as an SVG document. Non-finite points are left out. */
export function lineChartSvg(options: LineChartOptions): string {
  const width = options.width ?? 640;
  const height = options.height ?? 360;
  const margin = { left: 72, right: 16, top: 36, bottom: 48 };
  const series = options.series.map((s, i) => ({
    ...s,
    color: s.color ?? PALETTE[i % PALETTE.length],
    points: s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y)),
  }));
  const legendRows = series.length > 1 ? Math.ceil(series.length / 3) : 0;
  margin.top += legendRows * 16;
  const plotW = width - margin.left - margin.right;
  const plotH = height - margin.top - margin.bottom;
  const xs = series.flatMap((s) => s.points.map(([x]) => x));
  const ys = series.flatMap((s) => s.points.map(([, y]) => y));
  const parts: string[] = [];
  const font = `font-family="DejaVu Sans, Arial, sans-serif"`;
  parts.push(`<rect width="${width}" height="${height}" fill="white"/>`);
  parts.push(
    `<text x="${
      width / 2
    }" y="20" ${font} font-size="15" font-weight="bold" text-anchor="middle" fill="#222">` +
      `${escapeXml(fitText(options.title, 15, width - 20))}</text>`,
  );
  series.forEach((s, i) => {
    if (legendRows === 0) return;
    const col = i % 3;
    const row = Math.floor(i / 3);
    const x = margin.left + col * (plotW / 3);
    const y = 36 + row * 16;
    parts.push(
      `<line x1="${x}" y1="${y - 4}" x2="${x + 18}" y2="${y - 4}" stroke="${s.color}" stroke-width="2"` +
        ` stroke-opacity="${s.opacity ?? 1}"` +
        `${s.dashed ? ` stroke-dasharray="5 3"` : ""}/>` +
        `<text x="${x + 24}" y="${y}" ${font} font-size="11" fill="#222">${
          escapeXml(fitText(s.name, 11, plotW / 3 - 30))
        }</text>`,
    );
  });
  const frame =
    `<rect x="${margin.left}" y="${margin.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#888"/>`;
  if (xs.length === 0) {
    parts.push(frame);
    parts.push(
      `<text x="${margin.left + plotW / 2}" y="${
        margin.top + plotH / 2
      }" ${font} font-size="13" text-anchor="middle" fill="#888">no data</text>`,
    );
    return wrapSvg(width, height, parts);
  }
  const xr = range(xs, false);
  // The y axis runs from tick to tick, so the outermost ticks frame the data.
  const yData = range(ys, !!options.zeroLine);
  const yTicksRaw = niceTicks(yData.min, yData.max, 6);
  const yr = {
    min: Math.min(yTicksRaw[0] ?? yData.min, yData.min),
    max: Math.max(yTicksRaw[yTicksRaw.length - 1] ?? yData.max, yData.max),
  };
  const sx = (x: number) => margin.left + ((x - xr.min) / (xr.max - xr.min)) * plotW;
  const sy = (y: number) => margin.top + plotH - ((y - yr.min) / (yr.max - yr.min)) * plotH;

  const xTicks = niceTicks(xr.min, xr.max, 7).filter((t) => t >= xr.min && t <= xr.max);
  const yTicks = yTicksRaw.filter((t) => t >= yr.min && t <= yr.max);
  const xStep = xTicks.length > 1 ? xTicks[1] - xTicks[0] : 1;
  const yStep = yTicks.length > 1 ? yTicks[1] - yTicks[0] : 1;
  for (const t of yTicks) {
    const y = sy(t).toFixed(1);
    parts.push(`<line x1="${margin.left}" y1="${y}" x2="${margin.left + plotW}" y2="${y}" stroke="#eee"/>`);
    parts.push(
      `<text x="${margin.left - 6}" y="${y}" dy="4" ${font} font-size="11" text-anchor="end" fill="#444">${
        escapeXml(formatTick(t, yStep))
      }</text>`,
    );
  }
  for (const t of xTicks) {
    const x = sx(t).toFixed(1);
    parts.push(
      `<line x1="${x}" y1="${margin.top + plotH}" x2="${x}" y2="${margin.top + plotH + 4}" stroke="#888"/>`,
    );
    parts.push(
      `<text x="${x}" y="${
        margin.top + plotH + 17
      }" ${font} font-size="11" text-anchor="middle" fill="#444">${escapeXml(formatTick(t, xStep))}</text>`,
    );
  }
  parts.push(frame);
  if (options.zeroLine) {
    const y = sy(0).toFixed(1);
    parts.push(
      `<line class="zero" x1="${margin.left}" y1="${y}" x2="${
        margin.left + plotW
      }" y2="${y}" stroke="#333" stroke-dasharray="4 3"/>`,
    );
  }
  for (const s of series) {
    if (s.points.length === 0) continue;
    const d = s.points.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(" ");
    parts.push(
      `<polyline points="${d}" fill="none" stroke="${s.color}" stroke-width="2" stroke-opacity="${
        s.opacity ?? 1
      }"` +
        `${s.dashed ? ` stroke-dasharray="5 3"` : ""} stroke-linejoin="round"/>`,
    );
    if (s.markers || s.points.length === 1) {
      for (const [x, y] of s.points) {
        parts.push(`<circle cx="${sx(x).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="3" fill="${s.color}"/>`);
      }
    }
  }
  if (options.xLabel) {
    parts.push(
      `<text x="${margin.left + plotW / 2}" y="${
        height - 10
      }" ${font} font-size="12" text-anchor="middle" fill="#222">${escapeXml(options.xLabel)}</text>`,
    );
  }
  if (options.yLabel) {
    const cy = margin.top + plotH / 2;
    parts.push(
      `<text x="16" y="${cy}" transform="rotate(-90 16 ${cy})" ${font} font-size="12" text-anchor="middle" fill="#222">${
        escapeXml(options.yLabel)
      }</text>`,
    );
  }
  return wrapSvg(width, height, parts);
}

function wrapSvg(width: number, height: number, parts: string[]): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n` +
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">\n` +
    parts.join("\n") + "\n</svg>\n";
}

/** The three training charts of a run, as SVG documents. */
export interface TrainingCharts {
  reward: string;
  logRatios: string;
  loss: string;
}

/**
 * Reward curve (per-step mean reward, raw and smoothed, plus evaluation means per scorer),
 * h_w / h_l curves with the zero line, and the loss (with log 2, its value at initialisation).
 */
export function trainingCharts(records: readonly MetricsRecord[], smoothing = 10): TrainingCharts {
  const reward = stepSeries(records, "mean_reward");
  const scorers = [...new Set(evalRecords(records).flatMap((r) => Object.keys(r.rewards)))];
  const evalLines: Series[] = scorers.map((name) => ({
    name: `eval ${name}`,
    points: [...evalSeries(records, name, "base"), ...evalSeries(records, name, "policy")].sort((a, b) =>
      a[0] - b[0]
    ),
    markers: true,
    dashed: true,
  }));
  const loss = stepSeries(records, "loss");
  const ln2 = loss.length
    ? [[loss[0][0], Math.LN2], [loss[loss.length - 1][0], Math.LN2]] as Array<[number, number]>
    : [];
  return {
    reward: lineChartSvg({
      title: "Reward",
      xLabel: "step",
      yLabel: "reward",
      series: [
        { name: "step mean reward", points: reward, opacity: 0.35, color: PALETTE[0] },
        {
          name: `moving average (${smoothing})`,
          points: movingAverage(reward, smoothing),
          color: PALETTE[0],
        },
        ...evalLines.map((s, i) => ({ ...s, color: PALETTE[(i + 1) % PALETTE.length] })),
      ],
    }),
    logRatios: lineChartSvg({
      title: "Log-ratios h_w (winner) and h_l (loser)",
      xLabel: "step",
      yLabel: "h = log pi_theta - log pi_ref",
      zeroLine: true,
      series: [
        { name: "h_w", points: stepSeries(records, "h_w"), color: PALETTE[2] },
        { name: "h_l", points: stepSeries(records, "h_l"), color: PALETTE[1] },
      ],
    }),
    loss: lineChartSvg({
      title: "Loss",
      xLabel: "step",
      yLabel: "loss",
      series: [
        { name: "loss", points: loss, opacity: 0.35, color: PALETTE[0] },
        { name: `moving average (${smoothing})`, points: movingAverage(loss, smoothing), color: PALETTE[0] },
        { name: "log 2 (initial)", points: ln2, dashed: true, color: "#888888" },
      ],
    }),
  };
}
