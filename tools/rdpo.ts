/**
 * `deno task rdpo`: every command of the project as a subcommand (tools/commands.ts).
 *
 *   deno task rdpo train --config services/trainer/configs/rdpo_animals.yaml
 *   deno task rdpo serve policy --port 0
 *   deno task rdpo --help
 *
 * The deno tasks (`deno task train`, `deno task serve:policy`, ...) stay as aliases.
 */
import { Command, CommanderError } from "commander";
import { HELP_WIDTH, PROJECT_VERSION, runCommand } from "../lib/cli/command.ts";
import { COMMANDS, findCommand } from "./commands.ts";

/** The commander program that lists the commands: `rdpo --help` and unknown-command errors. */
export async function rdpoProgram(out: (text: string) => void): Promise<Command> {
  const program = new Command("rdpo")
    .description("RDPO for text-to-image diffusion: services, training, evaluation and tools.")
    .usage("<command> [flags]")
    .exitOverride()
    .configureHelp({ helpWidth: HELP_WIDTH })
    .configureOutput({ writeOut: out, writeErr: () => {}, outputError: () => {} })
    .version(`rdpo ${PROJECT_VERSION}`, "--version", "print the project version and exit")
    .helpOption("-h, --help", "print this help and exit")
    .helpCommand(false)
    .addHelpText(
      "after",
      "\nEach command has --help. The deno tasks are aliases: `deno task train` = `deno task rdpo train`,\n" +
        "`deno task serve:policy` = `deno task rdpo serve policy`.",
    );
  const serve = program.command("serve").description("run a gRPC service").helpCommand(false)
    .usage("<service> [flags]").exitOverride()
    .configureOutput({ writeOut: out, writeErr: () => {}, outputError: () => {} });
  const services: string[] = [];
  for (const entry of COMMANDS) {
    const spec = await entry.load();
    const [head, tail] = entry.name.split(":");
    (tail ? serve.command(tail) : program.command(head)).description(spec.summary);
    if (tail) services.push(tail);
  }
  serve.description(`run a gRPC service: ${services.join(", ")} (rdpo serve <service> --help)`);
  return program;
}

/** What `rdpo --help` prints. */
export async function rdpoHelp(): Promise<string> {
  let text = "";
  try {
    (await rdpoProgram((s) => text += s)).parse(["--help"], { from: "user" });
  } catch (e) {
    if (!(e instanceof CommanderError) || e.exitCode !== 0) throw e;
  }
  return text.trimEnd() + "\n";
}

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
