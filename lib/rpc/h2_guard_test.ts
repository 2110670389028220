import { assertEquals } from "../testing/assert.ts";
import { deferSessionTeardown, http2GuardInstalled } from "./h2_guard.ts";
import "./server.ts"; // installs the guard

Deno.test("h2 guard: close() and destroy() run after the current task, not inside the caller", async () => {
  const calls: string[] = [];
  const session = {
    close: (cb?: () => void) => {
      calls.push("close");
      cb?.();
    },
    destroy: (e?: Error, code?: number) => void calls.push(`destroy ${e?.message} ${code}`),
  };
  deferSessionTeardown(session);
  deferSessionTeardown(session); // idempotent: one deferral, not two
  let closed = false;
  session.close(() => (closed = true));
  session.destroy(new Error("boom"), 2);
  assertEquals(calls, []); // nothing ran synchronously (nghttp2 would still be on the stack)
  await new Promise((r) => setTimeout(r, 5));
  assertEquals(calls, ["close", "destroy boom 2"]);
  assertEquals(closed, true);
});

Deno.test("h2 guard: installed by lib/rpc/server.ts", () => {
  assertEquals(http2GuardInstalled(), Deno.env.get("RDPO_HTTP2_GUARD") !== "off");
});
