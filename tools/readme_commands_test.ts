import { assert, assertEquals } from "../lib/testing/assert.ts";
import { helpText } from "../lib/cli/command.ts";
import { repoRoot, sharedDir } from "../lib/testing/fixtures.ts";
import { COMMANDS, SCRIPTS } from "./commands.ts";
import { BEGIN, commandsSection, END, README, withSection } from "./readme_commands.ts";

Deno.test({
  name: "readme: the Commands section is what the flag specs print (run `deno task readme` when this fails)",
  sanitizeResources: false,
  async fn() {
    const readme = await Deno.readTextFile(README);
    const section = readme.slice(readme.indexOf(BEGIN), readme.indexOf(END));
    // Every command's --help is in it, flag by flag.
    for (const entry of [...COMMANDS, ...SCRIPTS]) {
      const spec = await entry.load();
      for (const key of Object.keys(spec.flags)) {
        const flag = `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
        assert(section.includes(`  ${flag}`), `README lacks ${entry.name} ${flag}`);
      }
      assert(section.includes(helpText(spec).split("\n")[0]), entry.name);
    }
    assertEquals(readme, await withSection(readme, await commandsSection()));
    // Defaults must not depend on where the checkout lives (CI clones it elsewhere).
    for (const local of [repoRoot, sharedDir()]) {
      assert(!section.includes(local), `the Commands section contains this machine's path ${local}`);
    }
  },
});

Deno.test("readme: a changed flag makes the section stale", async () => {
  const readme = await Deno.readTextFile(README);
  const stale = readme.replace("RDPO training steps", "RDPO steps (old text)");
  assert(stale !== readme, "the demo's --steps description is in the README");
  assertEquals(await withSection(stale, await commandsSection()), readme);
});
