/**
 * DeadlineQueue: deadlines fire in order on one timer, cancelled ones never fire, a shorter
 * deadline added later re-arms the timer, close() drops everything. Ordering only, no durations.
 */
import { assertEquals } from "../testing/assert.ts";
import { DeadlineQueue } from "./deadline_queue.ts";

const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

Deno.test("DeadlineQueue: fires live deadlines in deadline order, skips cancelled ones", async () => {
  const q = new DeadlineQueue();
  const fired: string[] = [];
  const now = Date.now();
  q.add(now + 40, () => fired.push("c"));
  const cancelB = q.add(now + 20, () => fired.push("b"));
  q.add(now + 5, () => fired.push("a")); // earlier than the armed timer: re-arms it
  cancelB();
  assertEquals(q.size, 2);
  await tick(80);
  assertEquals(fired, ["a", "c"]);
  assertEquals(q.size, 0);
  q.close();
});

Deno.test("DeadlineQueue: a cancelled earliest deadline re-arms for the next; close() fires nothing", async () => {
  const q = new DeadlineQueue();
  const fired: number[] = [];
  const now = Date.now();
  const cancels = Array.from({ length: 100 }, (_, i) => q.add(now + 1 + i % 3, () => fired.push(i)));
  // Cancel all but two (more than the compaction threshold).
  cancels.forEach((cancel, i) => i !== 10 && i !== 50 && cancel());
  cancels[10](); // twice: no effect on the count
  assertEquals(q.size, 1);
  await tick(40);
  assertEquals(fired, [50]);
  q.add(Date.now() + 5, () => fired.push(-1));
  q.close();
  q.add(Date.now(), () => fired.push(-2)); // after close: ignored
  await tick(30);
  assertEquals(fired, [50]);
});
