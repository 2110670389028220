import { assertEquals } from "../../../lib/testing/assert.ts";
import type { EvalMetrics, MetricsRecord } from "../metrics.ts";
import { csvField, evalTableCsv, evalTableFromMetrics, evalTableMarkdown } from "./table.ts";

function evalAt(step: number, model: string, rewards: Record<string, number>): EvalMetrics {
  return {
    type: "eval",
    step,
    time: "",
    model,
    rewards: Object.fromEntries(
      Object.entries(rewards).map(([k, v]) => [k, { mean: v, std: 0.25, count: 225 }]),
    ),
  };
}

const RECORDS: MetricsRecord[] = [
  evalAt(0, "base", { aesthetic: 5.79, imagereward: 0.65 }),
  evalAt(50, "policy", { aesthetic: 7.1, imagereward: 1.2 }),
  evalAt(100, "policy", { aesthetic: 7.8, imagereward: 1.48, hpsv2: 28.42 }),
];

Deno.test("table: base row = first evaluation, tuned row = last policy evaluation", () => {
  const t = evalTableFromMetrics(RECORDS);
  assertEquals(t.scorers, ["aesthetic", "imagereward", "hpsv2"]);
  assertEquals(t.rows.map((r) => [r.model, r.step]), [["base", 0], ["tuned", 100]]);
  assertEquals(evalTableFromMetrics([]).rows, []);
  assertEquals(evalTableFromMetrics([RECORDS[0]]).rows.length, 1);
  assertEquals(evalTableFromMetrics([RECORDS[1]]).rows[0].model, "policy (step 50)");
});

Deno.test("table: Markdown with a change row, missing cells as -", () => {
  assertEquals(
    evalTableMarkdown(evalTableFromMetrics(RECORDS), 2),
    [
      "| model | step | aesthetic | imagereward | hpsv2 |",
      "|---|---:|---:|---:|---:|",
      "| base | 0 | 5.79 | 0.65 | - |",
      "| tuned | 100 | 7.80 | 1.48 | 28.42 |",
      "| change |  | +2.01 | +0.83 | - |",
      "",
    ].join("\n"),
  );
});

Deno.test("table: CSV with mean, std and count per scorer, RFC 4180 quoting", () => {
  assertEquals(
    evalTableCsv({
      scorers: ["aesthetic"],
      rows: [
        { model: 'base, "v1.5"', step: 0, values: { aesthetic: { mean: 5.5, std: 0.5, count: 10 } } },
        { model: "tuned", step: 9, values: {} },
      ],
    }),
    'model,step,aesthetic_mean,aesthetic_std,aesthetic_n\r\n"base, ""v1.5""",0,5.5,0.5,10\r\ntuned,9,,,\r\n',
  );
  assertEquals(csvField("a\nb"), '"a\nb"');
  assertEquals(csvField(NaN), "");
});
