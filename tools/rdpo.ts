/**
 * `deno task rdpo`: every command of the project as a subcommand (tools/commands.ts).
 *
 *   deno task rdpo train --config services/trainer/configs/rdpo_animals.yaml
 *   deno task rdpo serve policy --port 0
 *   deno task rdpo --help
 *
 * The deno tasks (`deno task train`, `deno task serve:policy`, ...) stay as aliases.
 */
import { CommanderError } from "commander";
import { runCommand } from "../lib/cli/command.ts";
import { findCommand } from "./commands.ts";
import { rdpoProgram } from "./rdpo_program.ts";

if (import.meta.main) {
  const found = findCommand(Deno.args);
  if (found) {
    await runCommand(await found.entry.load(), found.rest);
  } else {
    let stdout = "";
    const program = await rdpoProgram((s) => stdout += s);
    try {
      program.parse(Deno.args.length ? [...Deno.args] : ["--help"], { from: "user" });
    } catch (e) {
      if (!(e instanceof CommanderError)) throw e;
      if (e.exitCode === 0 && Deno.args.length) {
        console.log(stdout.trimEnd());
        Deno.exit(0);
      }
      if (!Deno.args.length) console.error(stdout.trimEnd());
      else console.error(`rdpo: ${e.message.replace(/^error: /, "").replace(/\s*\n\s*/g, " ")}`);
      Deno.exit(2);
    }
  }
}
