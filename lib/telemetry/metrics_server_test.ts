import { assert, assertEquals } from "../testing/assert.ts";
import { startMetricsServer } from "./metrics_server.ts";
import { PROMETHEUS_CONTENT_TYPE, PromRegistry } from "./prometheus.ts";

Deno.test("metrics server: GET /metrics renders the registry; other paths 404, other methods 405", async () => {
  const registry = new PromRegistry();
  registry.counter("rdpo.test.hits", { description: "hits" }).add(2, { path: "/x" });
  const server = await startMetricsServer({ port: 0, registry });
  try {
    assert(server.port > 0, "a free port was picked");
    assertEquals(server.url, `http://127.0.0.1:${server.port}/metrics`);
    const res = await fetch(server.url);
    assertEquals(res.status, 200);
    assertEquals(res.headers.get("content-type"), PROMETHEUS_CONTENT_TYPE);
    assertEquals(await res.text(), registry.render());
    registry.counter("rdpo.test.hits", { description: "hits" }).add(1, { path: "/x" });
    assert(
      (await (await fetch(server.url)).text()).includes('rdpo_test_hits_total{path="/x"} 3'),
      "live values",
    );
    const missing = await fetch(`http://127.0.0.1:${server.port}/other`);
    assertEquals(missing.status, 404);
    await missing.body?.cancel();
    const post = await fetch(server.url, { method: "POST", body: "x" });
    assertEquals(post.status, 405);
    await post.body?.cancel();
  } finally {
    await server.close();
  }
});

Deno.test("metrics server: a port in use is an error naming the address", async () => {
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const port = (taken.addr as Deno.NetAddr).port;
    let message = "";
    await startMetricsServer({ port }).catch((e) => (message = (e as Error).message));
    assert(message.includes(`127.0.0.1:${port}`), `error names the address: ${message}`);
  } finally {
    taken.close();
  }
});
