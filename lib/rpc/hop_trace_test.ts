/**
 * hop_trace.ts: off without RDPO_HOP_TRACE (the tests' environment); a HopTrace keeps its marks in
 * memory and appends them as JSON lines on flush.
 */
import { assertEquals } from "../testing/assert.ts";
import { hops, HopTrace } from "./hop_trace.ts";

Deno.test("hop trace: off unless RDPO_HOP_TRACE is set", () => {
  assertEquals(Deno.env.get("RDPO_HOP_TRACE") ? "set" : hops, undefined);
});

Deno.test("hop trace: marks are kept in memory, then appended as JSON lines by flush()", async () => {
  const file = await Deno.makeTempFile({ suffix: ".jsonl" });
  try {
    const trace = new HopTrace(file);
    const earlier = performance.now();
    trace.mark("/svc/Session", 3n, "c.enc0", undefined, earlier);
    trace.mark("/svc/Session", 3n, "c.enc1", 120);
    assertEquals(await Deno.readTextFile(file), "", "nothing written before flush");
    trace.flush();
    trace.flush(); // nothing new: nothing appended
    const lines = (await Deno.readTextFile(file)).trim().split("\n").map((l) => JSON.parse(l));
    assertEquals(lines.map((l) => [l.path, l.id, l.hop, l.note]), [
      ["/svc/Session", 3, "c.enc0", undefined],
      ["/svc/Session", 3, "c.enc1", 120],
    ]);
    assertEquals(lines[0].t, performance.timeOrigin + earlier);
    assertEquals(lines[1].t >= lines[0].t, true);
  } finally {
    await Deno.remove(file);
  }
});
