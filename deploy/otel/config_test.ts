/**
 * Consistency of the collector / compose / Prometheus configs (nothing here can run the images):
 * every pipeline component is defined, every defined one is used, and the ports the files share
 * agree (collector -> Jaeger OTLP, Prometheus -> collector's exporter).
 */
import { parse } from "yaml";
import { join } from "node:path";
import { assert, assertEquals } from "../../lib/testing/assert.ts";

const dir = import.meta.dirname!;
const read = async (name: string) => parse(await Deno.readTextFile(join(dir, name)));

interface Collector {
  receivers: Record<string, unknown>;
  processors: Record<string, unknown>;
  exporters: Record<string, { endpoint?: string }>;
  service: { pipelines: Record<string, { receivers: string[]; processors?: string[]; exporters: string[] }> };
}

Deno.test("collector.yaml: pipelines use only defined components, and every component is used", async () => {
  const c = (await read("collector.yaml")) as Collector;
  const used = { receivers: new Set<string>(), processors: new Set<string>(), exporters: new Set<string>() };
  for (const [name, p] of Object.entries(c.service.pipelines)) {
    assert(/^(traces|metrics|logs)(\/.+)?$/.test(name), `pipeline ${name}: signal/name`);
    for (const kind of ["receivers", "processors", "exporters"] as const) {
      for (const id of p[kind] ?? []) {
        assert(id in c[kind], `pipeline ${name}: ${kind.slice(0, -1)} ${id} is not defined`);
        used[kind].add(id);
      }
    }
  }
  for (const kind of ["receivers", "processors", "exporters"] as const) {
    assertEquals([...used[kind]].sort(), Object.keys(c[kind]).sort(), `${kind} defined = used`);
  }
});

Deno.test("deploy/otel: the collector exports to Jaeger's OTLP port and Prometheus scrapes the collector", async () => {
  const c = (await read("collector.yaml")) as Collector;
  const compose = await read("docker-compose.yaml");
  const jaegerArgs: string[] = compose.services.jaeger.command;
  const grpc = jaegerArgs.find((a) => a.startsWith("--collector.otlp.grpc.host-port="))!.split("=")[1];
  assertEquals(c.exporters["otlp/jaeger"].endpoint, grpc);
  const prom = await read("prometheus.yml");
  assertEquals(prom.scrape_configs[0].static_configs[0].targets, [c.exporters.prometheus.endpoint]);
  const mount: string = compose.services["otel-collector"].volumes[0];
  assert(mount.startsWith("./collector.yaml:"), "the compose file mounts this collector.yaml");
});
