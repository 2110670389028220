/**
 * Bounded fuzz of every service in its own process (the long run is `deno task fuzz --calls 10000`):
 * a seeded few hundred hostile calls each must give no INTERNAL/UNKNOWN, leave the server alive
 * and SERVING, and keep its RSS within RSS_BOUND_MIB of where it started.
 */
import { assert } from "../lib/testing/assert.ts";
import { formatReports, fuzzTarget, fuzzTargets, reportOk } from "./fuzz.ts";

const CALLS = Number(Deno.env.get("RDPO_FUZZ_TEST_CALLS") ?? 200);

for (const name of ["reward", "policy", "trainer"]) {
  Deno.test(`fuzz ${name}: ${CALLS} seeded hostile calls, no INTERNAL/UNKNOWN, alive, RSS bounded`, async () => {
    const tmp = await Deno.makeTempDir({ prefix: "rdpo-fuzz-test-" });
    try {
      const target = fuzzTargets(`${tmp}/adapters`).find((t) => t.name === name)!;
      const report = await fuzzTarget(target, CALLS, 7);
      const findings = report.findings.map((f) => `${f.method} ${f.code} (call ${f.call}): ${f.details}`);
      assert(reportOk(report), `${formatReports([report])}\n${findings.join("\n")}`);
      assert(report.longestDetails <= 2100, `an error message of ${report.longestDetails} chars`);
    } finally {
      await Deno.remove(tmp, { recursive: true }).catch(() => {});
    }
  });
}
