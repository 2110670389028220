/**
 * The commander program of `rdpo` (tools/rdpo.ts): the command list for `rdpo --help`, the README,
 * and unknown-command errors with suggestions. A module of its own, without top-level await, because
 * the README command (loaded by rdpo) imports it: rdpo.ts itself would be an import cycle stuck in
 * its own top-level await.
 */
import { Command, CommanderError } from "commander";
import { HELP_WIDTH, PROJECT_VERSION } from "../lib/cli/command.ts";
import { COMMANDS } from "./commands.ts";

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
    // Only services are a group (`rdpo serve policy`); other tasks keep their name (`rdpo gen:wasm`).
    const tail = entry.name.startsWith("serve:") ? entry.name.slice("serve:".length) : undefined;
    (tail ? serve.command(tail) : program.command(entry.name)).description(spec.summary);
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
