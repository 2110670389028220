/**
 * The README's first command, `deno task demo`, on a very short schedule (`--quick`): services start
 * and report health, a real RDPO run completes, the base-vs-tuned table and the report are printed.
 */
import { join } from "node:path";
import { assert, assertEquals } from "../lib/testing/assert.ts";
import { repoRoot } from "../lib/testing/fixtures.ts";

Deno.test({
  name: "demo: --quick runs the services, a short RDPO run, the evaluation and the report",
  sanitizeResources: false,
  async fn() {
    const out = await Deno.makeTempDir({ prefix: "rdpo-demo-" });
    const r = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", join(repoRoot, "tools", "demo.ts"), "--quick", "--out", join(out, "demo")],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stdout = new TextDecoder().decode(r.stdout);
    const stderr = new TextDecoder().decode(r.stderr);
    assertEquals(r.code, 0, `demo failed:\n${stdout}\n${stderr}`);
    assert(/reward\s+127\.0\.0\.1:\d+\s+health SERVING/.test(stdout), stdout);
    assert(/policy\s+127\.0\.0\.1:\d+\s+health SERVING/.test(stdout), stdout);
    assert(/\| base( \| -?\d+\.\d+){2,} \|/.test(stdout), stdout);
    assert(/\| tuned( \| -?\d+\.\d+){2,} \|/.test(stdout), stdout);
    assert(/trained reward \S+, tuned - base per seed-matched sample: [+-]\d+\.\d+ ± /.test(stdout), stdout);
    const report = stdout.match(/report: (\S+report\.html)/);
    assert(report, stdout);
    const html = await Deno.readTextFile(report[1]);
    assert(html.includes("grid.png"), "the report shows the sample grid");
    await Deno.remove(out, { recursive: true });
  },
});
