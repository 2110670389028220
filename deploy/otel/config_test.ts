/**
 * Consistency of the collector / compose / Prometheus configs (nothing here can run the images):
 * every pipeline component is defined, every defined one is used, and the ports the files share
 * agree (collector -> Jaeger OTLP, Prometheus -> collector's exporter).
 */
import { parse } from "yaml";
import { join } from "node:path";
import { assert, assertEquals } from "../../lib/testing/assert.ts";
import { type CollectorConfig, collectorProblems } from "./collector_check.ts";

const dir = import.meta.dirname!;
const read = async (name: string) => parse(await Deno.readTextFile(join(dir, name)));

Deno.test("collector.yaml: pipelines use only defined components, and every component is used", async () => {
  assertEquals(collectorProblems((await read("collector.yaml")) as CollectorConfig), []);
});

Deno.test("collector check: an undefined and an unused component are reported", () => {
  const problems = collectorProblems({
    receivers: { otlp: {} },
    processors: { batch: {} },
    exporters: { debug: {} },
    service: { pipelines: { traces: { receivers: ["otlp", "zipkin"], exporters: ["debug"] } } },
  });
  assertEquals(problems, [
    "pipeline traces: receiver zipkin is not defined",
    "processor batch is defined but no pipeline uses it",
  ]);
});

Deno.test("deploy/otel: the collector exports to Jaeger's OTLP port and Prometheus scrapes the collector", async () => {
  const c = (await read("collector.yaml")) as CollectorConfig;
  const compose = await read("docker-compose.yaml");
  const jaegerArgs: string[] = compose.services.jaeger.command;
  const grpc = jaegerArgs.find((a) => a.startsWith("--collector.otlp.grpc.host-port="))!.split("=")[1];
  assertEquals(c.exporters["otlp/jaeger"].endpoint, grpc);
  const prom = await read("prometheus.yml");
  assertEquals(prom.scrape_configs[0].static_configs[0].targets, [c.exporters.prometheus.endpoint]);
  const mount: string = compose.services["otel-collector"].volumes[0];
  assert(mount.startsWith("./collector.yaml:"), "the compose file mounts this collector.yaml");
});
