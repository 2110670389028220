/** followFiles: a change is picked up by the poll, a bad reload keeps the last good value. */
import { assertEquals, assertThrows } from "../testing/assert.ts";
import { followFiles } from "./reload.ts";

function parsePositive(file: string): number {
  const n = Number(Deno.readTextFileSync(file));
  if (!(n > 0)) throw new Error(`${file}: not a positive number`);
  return n;
}

Deno.test("reload: the poll picks up a change; a bad file keeps the previous value and is reported once", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "rdpo-reload-" });
  const file = `${dir}/value`;
  Deno.writeTextFileSync(file, "1");
  const errors: string[] = [];
  const seen: number[] = [];
  const value = followFiles({
    files: [file],
    load: () => parsePositive(file),
    intervalMs: 10,
    sighup: false,
    onReload: (v) => seen.push(v),
    onError: (e) => errors.push((e as Error).message),
  });
  const waitFor = async (ok: () => boolean) => {
    for (let i = 0; i < 200 && !ok(); i++) await new Promise((r) => setTimeout(r, 10));
  };
  try {
    assertEquals(value.current, 1);
    Deno.writeTextFileSync(file, "2");
    await waitFor(() => value.current === 2);
    assertEquals([value.current, value.reloads, seen], [2, 1, [2]]);
    Deno.writeTextFileSync(file, "-5");
    await waitFor(() => errors.length > 0);
    await new Promise((r) => setTimeout(r, 60)); // several more polls of the same bad content
    assertEquals([value.current, errors.length], [2, 1]);
    Deno.removeSync(file);
    await waitFor(() => errors.length > 1);
    assertEquals(value.current, 2);
    Deno.writeTextFileSync(file, "3");
    assertEquals(value.reload(), true);
    assertEquals(value.current, 3);
  } finally {
    value.close();
    Deno.removeSync(dir, { recursive: true });
  }
  assertThrows(() => followFiles({ files: [file], load: () => parsePositive(file), sighup: false }));
});
