import { assert, assertEquals } from "../../lib/testing/assert.ts";
import {
  EtaEstimator,
  formatDuration,
  formatLogLine,
  formatNumber,
  formatProgressLine,
  ProgressReporter,
  renderBar,
} from "./progress.ts";

Deno.test("progress: durations", () => {
  assertEquals(formatDuration(0), "0s");
  assertEquals(formatDuration(45.4), "45s");
  assertEquals(formatDuration(185), "3m05s");
  assertEquals(formatDuration(3720), "1h02m");
  assertEquals(formatDuration(180000), "2d02h");
  assertEquals(formatDuration(undefined), "--");
  assertEquals(formatDuration(NaN), "--");
});

Deno.test("progress: numbers", () => {
  assertEquals(formatNumber(0.693147), "0.6931");
  assertEquals(formatNumber(-0.00123456, 3), "-0.00123");
  assertEquals(formatNumber(5.8), "5.8");
  assertEquals(formatNumber(12345.678), "12350");
  assertEquals(formatNumber(2e-6), "2.000e-6");
  assertEquals(formatNumber(3e7, 2), "3.0e7");
  assertEquals(formatNumber(0), "0");
  assertEquals(formatNumber(NaN), "nan");
  assertEquals(formatNumber(-Infinity), "-inf");
  assertEquals(formatNumber(undefined), "--");
});

Deno.test("progress: bar has the requested width and eighth-cell resolution", () => {
  assertEquals(renderBar(0, 4), "    ");
  assertEquals(renderBar(1, 4), "████");
  assertEquals(renderBar(0.5, 4), "██  ");
  assertEquals(renderBar(1 / 32, 4), "▏   ");
  assertEquals(renderBar(0.625, 4), "██▌ ");
  assertEquals(renderBar(0.5625, 4), "██▎ ");
  assertEquals(renderBar(2, 3), "███");
  assertEquals(renderBar(NaN, 3), "   ");
  for (let i = 0; i <= 40; i++) assertEquals([...renderBar(i / 40, 7)].length, 7);
});

Deno.test("progress: terminal line holds step, bar, reward, loss, h_l and ETA", () => {
  const line = formatProgressLine(
    { step: 12, total: 100, mean_reward: 5.8123, loss: 0.693147, h_l: -0.0012, eta_seconds: 185 },
    100,
  );
  assert(line.startsWith("step  12/100 |"), line);
  assert(line.endsWith(" 12% reward 5.812 loss 0.6931 h_l -0.0012 ETA 3m05s"), line);
  assert(line.length <= 100);
});

Deno.test("progress: terminal line fits narrow terminals by dropping fields from the right", () => {
  const s = { step: 5, total: 10, mean_reward: 1, loss: 0.5, h_l: 0.1, eta_seconds: 10 };
  for (const columns of [30, 45, 60, 80]) {
    const line = formatProgressLine(s, columns);
    assert([...line].length <= columns, `${columns}: ${line}`);
    assert(line.includes("ETA 10s") || columns < 35, `${columns}: ${line}`);
  }
  assert(!formatProgressLine(s, 45).includes("h_l"));
  assert(formatProgressLine(s, 80).includes("h_l 0.1"));
});

Deno.test("progress: log line is key=value", () => {
  assertEquals(
    formatLogLine({
      step: 3,
      total: 50,
      loss: 0.69,
      h_w: 0.002,
      h_l: -0.001,
      accuracy: 0.75,
      mean_reward: 5.5,
      reward_margin: 0.25,
      skipped_ties: 1,
      step_seconds: 4.25,
      eta_seconds: 200,
    }),
    "step=3/50 loss=0.69 h_w=0.002 h_l=-0.001 acc=0.75 reward=5.5 margin=0.25 ties=1 step_s=4.25 eta=3m20s",
  );
  assertEquals(formatLogLine({ step: 1, total: 2 }), "step=1/2 eta=--");
});

Deno.test("progress: ETA skips the warm-up step and averages the rest", () => {
  const eta = new EtaEstimator(0.5);
  assertEquals(eta.eta(10), undefined);
  eta.observe(30);
  assertEquals(eta.eta(10), 300);
  eta.observe(2);
  assertEquals(eta.eta(10), 20);
  eta.observe(4);
  assertEquals(eta.eta(10), 30);
  eta.observe(NaN);
  assertEquals(eta.eta(0), 0);
});

Deno.test("progress: reporter redraws in place on a terminal, prints lines elsewhere", () => {
  const out: string[] = [];
  const bar = new ProgressReporter({
    total: 4,
    isTerminal: true,
    write: (t) => out.push(t),
    columns: () => 80,
  });
  assertEquals(bar.mode, "bar");
  bar.step({ step: 1, loss: 0.7, step_seconds: 2 });
  bar.message("eval aesthetic=5.5");
  bar.step({ step: 2, loss: 0.6, step_seconds: 2 });
  bar.finish();
  assert(out[0].startsWith("\r\x1b[2Kstep 1/4 |"), JSON.stringify(out[0]));
  assert(!out[0].includes("\n"));
  assert(out[1].startsWith("\r\x1b[2Keval aesthetic=5.5\nstep 1/4"), JSON.stringify(out[1]));
  assert(out[2].includes("step 2/4") && out[2].includes("ETA 4s"), out[2]);
  assertEquals(out[3], "\n");

  const lines: string[] = [];
  const log = new ProgressReporter({ total: 4, isTerminal: false, write: (t) => lines.push(t) });
  assertEquals(log.mode, "lines");
  log.step({ step: 1, loss: 0.7 });
  log.message("checkpoint step-000001");
  log.finish();
  assertEquals(lines, ["step=1/4 loss=0.7 eta=--\n", "checkpoint step-000001\n"]);

  const quiet: string[] = [];
  const none = new ProgressReporter({ total: 4, mode: "none", write: (t) => quiet.push(t) });
  none.step({ step: 1 });
  none.message("x");
  assertEquals(quiet, []);
});
