/**
 * The one command-line convention of every entry point (issue 16), on commander:
 *
 *   --help / -h     usage, every flag with its type, default and environment variables, examples; exit 0
 *   --version       the project version (deno.json "version"); exit 0
 *   a bad flag      one line naming the flag and what is allowed ("did you mean" when close); exit 2
 *   at start        one line (stderr) with every setting the command runs with, and where it came from
 *
 * A command is a CommandSpec: its FlagSpecs record (lib/rpc/flags.ts) is the single source of truth
 * for the parser, the help and the README's "Commands" section (tools/readme_commands.ts).
 */
import { Command, CommanderError } from "commander";
import denoConfig from "../../deno.json" with { type: "json" };
import {
  addSpecOptions,
  FlagError,
  flagName,
  type FlagSpecs,
  type FlagValues,
  parseWith,
  resolveFlags,
} from "../rpc/flags.ts";
import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from "../errors.ts";

export const PROJECT_VERSION: string = denoConfig.version;

/** Help is wrapped at a fixed width so `--help` and the README section are the same text everywhere. */
export const HELP_WIDTH = 100;

export interface CommandSpec<S extends FlagSpecs = FlagSpecs> {
  /**
   * The deno task name, e.g. "train", "gen:wasm" or "serve:policy" (`rdpo` spells "serve:" as
   * `serve `, other names as they are: `rdpo gen:wasm`); for a script
   * with no task (a single benchmark, the health probe), its path, e.g. "tools/healthcheck.ts".
   */
  name: string;
  /** One line for the command lists. */
  summary: string;
  /** More text under the usage line (optional). */
  description?: string;
  flags: S;
  /** Positional arguments, commander syntax, e.g. "[files...]"; none unless given. */
  args?: string;
  /** Command lines shown under "Examples:" (one or two). */
  examples: readonly string[];
  /** `args` is the command line it was given (services re-read it). */
  run(values: FlagValues<S>, positionals: string[], args: readonly string[]): Promise<unknown> | unknown;
}

/** The commander Command of a spec: throws instead of exiting, writes help into `out`. */
function commandOf(spec: CommandSpec, out: (text: string) => void): Command {
  const command = new Command(spec.name)
    .description(spec.description ? `${spec.summary}\n\n${spec.description}` : spec.summary)
    .usage(`[flags]${spec.args ? ` ${spec.args}` : ""}`)
    .exitOverride()
    .configureHelp({ helpWidth: HELP_WIDTH, sortOptions: false })
    .configureOutput({ writeOut: out, writeErr: () => {}, outputError: () => {} })
    .addHelpText("after", examplesText(spec));
  if (spec.args) command.arguments(spec.args);
  return addSpecOptions(command, spec.flags)
    .version(`rdpo ${PROJECT_VERSION}`, "--version", "print the project version and exit")
    .helpOption("-h, --help", "print this help and exit");
}

/** A script with no deno task (its name is its path) is run as `deno run -A <path>`. */
export const isScript = (spec: CommandSpec) => spec.name.endsWith(".ts");

function examplesText(spec: CommandSpec): string {
  const rdpo = `deno task rdpo ${spec.name.replace(/^serve:/, "serve ")}`;
  const lines = isScript(spec) ? spec.examples : [...spec.examples, `${rdpo} --help`];
  const also = isScript(spec) ? "" : `Also: \`${rdpo}\`. `;
  return `\nExamples:\n${lines.map((l) => `  ${l}`).join("\n")}\n\n` +
    `${also}Flags beat environment variables, which beat defaults.`;
}

/** What `--help` prints, exactly (the README section is built from this too). */
export function helpText(spec: CommandSpec): string {
  let text = "";
  try {
    commandOf(spec, (s) => text += s).parse(["--help"], { from: "user" });
  } catch (e) {
    if (!(e instanceof CommanderError) || e.exitCode !== 0) throw e;
  }
  return text.trimEnd() + "\n";
}

export type ParseOutcome<S extends FlagSpecs> =
  | { kind: "run"; values: FlagValues<S>; positionals: string[]; sources: Record<string, string> }
  | { kind: "exit"; code: number; stdout: string; stderr: string };

/** Parses a command line without side effects: run it, or exit with this code and output. */
export function parseCommand<S extends FlagSpecs>(
  spec: CommandSpec<S>,
  args: readonly string[],
  env: (name: string) => string | undefined = (name) => Deno.env.get(name),
): ParseOutcome<S> {
  let stdout = "";
  const command = commandOf(spec as unknown as CommandSpec, (s) => stdout += s);
  try {
    const { given, operands } = parseWith(command, args, spec.flags);
    const { values, sources } = resolveFlags(spec.flags, given, env);
    return { kind: "run", values, positionals: operands, sources };
  } catch (e) {
    if (e instanceof CommanderError && e.exitCode === 0) return { kind: "exit", code: 0, stdout, stderr: "" };
    if (e instanceof FlagError || e instanceof CommanderError) {
      // A missing or extra positional argument: say what the command line looks like.
      const usage = spec.args && /argument/.test(e.message)
        ? ` (usage: ${spec.name} [flags] ${spec.args})`
        : "";
      return { kind: "exit", code: 2, stdout: "", stderr: `${spec.name}: ${oneLine(e.message)}${usage}\n` };
    }
    throw e;
  }
}

const oneLine = (s: string) => s.replace(/^error: /, "").replace(/\s*\n\s*/g, " ");

/** Flag values that are secrets are shown as "***" in the settings line. */
const SECRET = /token|secret|password|credential/i;

/** `train: config=a.yaml (flag) resume=false steps=60 ...`: every setting, one line. */
export function settingsLine(
  spec: CommandSpec,
  values: Record<string, unknown>,
  sources: Record<string, string>,
): string {
  const parts = Object.keys(spec.flags).map((key) => {
    const v = values[key];
    const shown = v === undefined || v === ""
      ? "-"
      : SECRET.test(key)
      ? "***"
      : Array.isArray(v)
      ? `[${v.join(",")}]`
      : String(v);
    const from = sources[key] && sources[key] !== "default" ? ` (${sources[key]})` : "";
    return `${flagName(key)}=${shown}${from}`;
  });
  return `${spec.name}: ${parts.join(" ")}`;
}

/**
 * Parses flags for `spec` or exits (help/version: 0; a bad flag: 2, one line on stderr); prints the
 * settings line to stderr. Returns the values for commands that run on after parsing (services).
 */
export function parseOrExit<S extends FlagSpecs>(
  spec: CommandSpec<S>,
  args: readonly string[] = Deno.args,
): { values: FlagValues<S>; positionals: string[] } {
  const outcome = parseCommand(spec, args);
  if (outcome.kind === "exit") {
    if (outcome.stdout) Deno.stdout.writeSync(new TextEncoder().encode(outcome.stdout));
    if (outcome.stderr) Deno.stderr.writeSync(new TextEncoder().encode(outcome.stderr));
    Deno.exit(outcome.code);
  }
  console.error(settingsLine(spec as unknown as CommandSpec, outcome.values, outcome.sources));
  return outcome;
}

/** A bad flag or config value, or a file that is not there: the user's to fix, not a bug. */
function isUsersToFix(e: unknown): e is Error {
  return e instanceof FlagError || e instanceof InvalidArgumentError || e instanceof NotFoundError ||
    e instanceof FailedPreconditionError || e instanceof Deno.errors.NotFound;
}

/**
 * The whole life of a command: parse (or exit), print the settings line, run. Problems that are the
 * user's to fix (a FlagError or InvalidArgumentError, e.g. a bad config key) print one line and exit 2,
 * without a stack trace; anything else is a bug and propagates.
 */
export async function runCommand<S extends FlagSpecs>(
  spec: CommandSpec<S>,
  args: readonly string[] = Deno.args,
): Promise<void> {
  const { values, positionals } = parseOrExit(spec, args);
  try {
    await spec.run(values, positionals, args);
  } catch (e) {
    if (isUsersToFix(e)) {
      console.error(`${spec.name}: ${oneLine((e as Error).message)}`);
      Deno.exit(2);
    }
    throw e;
  }
}
