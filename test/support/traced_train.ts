/**
 * Child process of test/tracing_test.ts: runs a training run from a config file with the process's
 * OpenTelemetry settings (the test starts it with OTEL_DENO=true, which `deno test` cannot set for
 * itself), then exits, which flushes Deno's exporter. Prints one JSON line with the result.
 *
 *   OTEL_DENO=true OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 \
 *     deno run -A test/support/traced_train.ts run_config.json
 */
import { parseConfig } from "../../services/trainer/config.ts";
import { train } from "../../services/trainer/loop.ts";

const [configPath] = Deno.args;
if (!configPath) {
  console.error("usage: traced_train.ts CONFIG.json");
  Deno.exit(2);
}
const config = parseConfig(await Deno.readTextFile(configPath), configPath);
const result = await train(config, { progress: "none", log: () => {}, skipEvaluation: true });
console.log(JSON.stringify({ steps: result.steps, optimizerStep: result.optimizerStep }));
