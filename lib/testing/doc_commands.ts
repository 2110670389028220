/** Command lines quoted in the project's Markdown, for tests that keep the docs valid. */
import { join } from "node:path";
import { repoRoot } from "./fixtures.ts";

/** The command lines of `script` in a Markdown file (`\` continuations joined, `#` comments cut). */
export async function documentedCommands(file: string, script: string): Promise<string[][]> {
  const text = (await Deno.readTextFile(join(repoRoot, file))).replace(/\\\n\s*/g, " ");
  return text.split("\n").filter((l) => l.includes(`deno run -A ${script}`)).map((l) =>
    l.slice(l.indexOf(script) + script.length).replace(/#.*$/, "").trim().split(/\s+/).filter(Boolean)
  );
}
