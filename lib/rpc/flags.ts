/**
 * Command-line flags with environment fallbacks, shared by every command (lib/cli/command.ts) and
 * service main.ts. The FlagSpecs records are the single source of truth: they drive commander (the
 * parser), `--help`, the start-up settings line and the README's "Commands" section.
 *
 * Precedence: `--flag` on the command line, then the first set environment variable of `env`,
 * then `default`. Syntax: `--name value`, `--name=value`; booleans also `--name`, `--no-name`.
 * Every problem is a FlagError whose message names the flag (and the variable it came from).
 */

import { Command, CommanderError, Option } from "commander";

/** "list": a string flag that may be given several times (values in order; env: comma-separated). */
export type FlagType = "string" | "number" | "int" | "bool" | "list";

export interface FlagSpec {
  type: FlagType;
  /** Environment variables to read, first set one wins (e.g. ["REWARD_PORT", "RDPO_PORT"]). */
  env?: readonly string[];
  default?: string | number | boolean;
  /** Fail when neither flag, env nor default gives a value. */
  required?: boolean;
  /** Inclusive numeric bounds. */
  min?: number;
  max?: number;
  /** Allowed string values. */
  choices?: readonly string[];
  description?: string;
}

export type FlagSpecs = Record<string, FlagSpec>;

type ValueOf<F extends FlagSpec> = F["type"] extends "string" ? string
  : F["type"] extends "bool" ? boolean
  : F["type"] extends "list" ? string[]
  : number;

/** Parsed values keyed like the specs (camelCase keys; the flag is the kebab-case form). */
export type FlagValues<S extends FlagSpecs> = {
  [K in keyof S]: S[K] extends { default: unknown } | { required: true } | { type: "bool" | "list" }
    ? ValueOf<S[K]>
    : ValueOf<S[K]> | undefined;
};

export class FlagError extends Error {
  override name = "FlagError";
}

/** "maxMessageBytes" -> "max-message-bytes". */
export function flagName(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

function convert(key: string, spec: FlagSpec, raw: string, source: string): string | number | boolean {
  const where = `--${flagName(key)}${source ? ` (from ${source})` : ""}`;
  switch (spec.type) {
    case "list":
    case "string":
      if (spec.choices && !spec.choices.includes(raw)) {
        throw new FlagError(`${where}: "${raw}" is not one of ${spec.choices.join(", ")}`);
      }
      return raw;
    case "bool": {
      const v = raw.toLowerCase();
      if (["1", "true", "yes", "on"].includes(v)) return true;
      if (["0", "false", "no", "off", ""].includes(v)) return false;
      throw new FlagError(`${where}: "${raw}" is not a boolean (true/false)`);
    }
    case "number":
    case "int": {
      const n = raw.trim() === "" ? NaN : Number(raw);
      const range = spec.min !== undefined && spec.max !== undefined
        ? ` in ${spec.min}..${spec.max}`
        : spec.min !== undefined
        ? ` >= ${spec.min}`
        : spec.max !== undefined
        ? ` <= ${spec.max}`
        : "";
      const allowed = ` (expected ${spec.type === "int" ? "an integer" : "a number"}${range})`;
      if (!Number.isFinite(n)) throw new FlagError(`${where}: "${raw}" is not a number${allowed}`);
      if (spec.type === "int" && !Number.isInteger(n)) {
        throw new FlagError(`${where}: "${raw}" is not an integer${allowed}`);
      }
      if (spec.min !== undefined && n < spec.min) {
        throw new FlagError(`${where}: ${n} is below the minimum ${spec.min}`);
      }
      if (spec.max !== undefined && n > spec.max) {
        throw new FlagError(`${where}: ${n} is above the maximum ${spec.max}`);
      }
      return n;
    }
  }
}

export interface ParsedFlags<S extends FlagSpecs> {
  values: FlagValues<S>;
  /** Arguments that are not flags (e.g. a subcommand), in order; everything after "--" too. */
  positionals: string[];
  /** Where each value came from: "flag", "env NAME" or "default". */
  sources: Record<string, string>;
}

/**
 * One commander Option per spec (plus a hidden `--no-x` for booleans). Values are converted by
 * `convert`, so a bad value is a FlagError naming the flag; defaults and environment variables are
 * resolved by `resolveFlags` rather than by commander, because a spec may list several variables
 * (POLICY_PORT, then RDPO_PORT) and a boolean variable reads "false" as false, where commander's
 * Option.env() takes one name and treats any set boolean variable as true.
 */
export function specOptions(key: string, spec: FlagSpec): Option[] {
  const flag = `--${flagName(key)}`;
  if (spec.type === "bool") {
    const positive = new Option(flag, describeFlag(spec));
    return [positive, new Option(`--no-${flagName(key)}`).hideHelp()];
  }
  const option = new Option(`${flag} <${spec.type === "list" ? "string" : spec.type}>`, describeFlag(spec));
  option.argParser((raw: string, previous: unknown) => {
    const value = convert(key, spec, raw, "");
    return spec.type === "list" ? [...(Array.isArray(previous) ? previous : []), value] : value;
  });
  return [option];
}

/** The help text of one flag: its description, then type facts, default and environment variables. */
export function describeFlag(spec: FlagSpec): string {
  const facts: string[] = [];
  if (spec.type === "list") facts.push("repeatable");
  if (spec.type === "bool") facts.push("bool");
  if (spec.choices) facts.push(`one of ${spec.choices.join(", ")}`);
  if (spec.min !== undefined && spec.max !== undefined) facts.push(`${spec.min}..${spec.max}`);
  else if (spec.min !== undefined) facts.push(`>= ${spec.min}`);
  else if (spec.max !== undefined) facts.push(`<= ${spec.max}`);
  if (spec.required) facts.push("required");
  if (spec.default !== undefined) facts.push(`default ${JSON.stringify(spec.default)}`);
  if (spec.env?.length) facts.push(`env ${spec.env.join(", ")}`);
  const text = spec.description ?? "";
  return facts.length ? `${text}${text ? " " : ""}(${facts.join("; ")})` : text;
}

/** Adds every spec's options to `command`. */
export function addSpecOptions(command: Command, specs: FlagSpecs): Command {
  for (const [key, spec] of Object.entries(specs)) {
    for (const option of specOptions(key, spec)) command.addOption(option);
  }
  return command;
}

/**
 * Command-line values parsed by commander (keyed by spec key, only those given) -> every value:
 * flag, then the first set environment variable, then the default.
 */
export function resolveFlags<S extends FlagSpecs>(
  specs: S,
  given: Record<string, unknown>,
  env: (name: string) => string | undefined = (name) => Deno.env.get(name),
): { values: FlagValues<S>; sources: Record<string, string> } {
  const values: Record<string, unknown> = {};
  const sources: Record<string, string> = {};
  for (const [key, spec] of Object.entries(specs)) {
    if (given[key] !== undefined) {
      values[key] = given[key];
      sources[key] = "flag";
      continue;
    }
    const envName = (spec.env ?? []).find((name) => env(name) !== undefined);
    if (envName !== undefined) {
      const raw = env(envName) as string;
      values[key] = spec.type === "list"
        ? raw.split(",").map((s) => s.trim()).filter(Boolean)
        : convert(key, spec, raw, `env ${envName}`);
      sources[key] = `env ${envName}`;
    } else if (spec.default !== undefined) {
      values[key] = spec.default;
      sources[key] = "default";
    } else if (spec.type === "bool") {
      values[key] = false;
      sources[key] = "default";
    } else if (spec.type === "list") {
      values[key] = [];
      sources[key] = "default";
    } else if (spec.required) {
      const envHint = spec.env?.length ? ` or set ${spec.env.join(" / ")}` : "";
      throw new FlagError(`--${flagName(key)}: required${envHint}`);
    } else {
      values[key] = undefined;
      sources[key] = "default";
    }
  }
  return { values: values as FlagValues<S>, sources };
}

/**
 * Commander's errors -> one FlagError line naming the flag and what is allowed:
 * `--prot: unknown flag; did you mean --port?`, `--port: missing value (<int>)`.
 */
export function flagErrorOf(error: CommanderError, specs: FlagSpecs): FlagError {
  const message = error.message.replace(/^error: /, "");
  const known = () => Object.keys(specs).map((k) => `--${flagName(k)}`).join(", ");
  switch (error.code) {
    case "commander.unknownOption": {
      const flag = /'([^']+)'/.exec(message)?.[1] ?? "?";
      const name = flag.split("=")[0];
      const close = /Did you mean (\S+)\?/.exec(message)?.[1];
      return new FlagError(
        close
          ? `${name}: unknown flag; did you mean ${close}?`
          : `${name}: unknown flag (known: ${known() || "none"})`,
      );
    }
    case "commander.optionMissingArgument": {
      const flag = /'(--[^' ]+)( <(\w+)>)?'/.exec(message);
      return new FlagError(`${flag?.[1] ?? "?"}: missing value${flag?.[3] ? ` (<${flag[3]}>)` : ""}`);
    }
    case "commander.excessArguments": {
      const extra = /got \d+: (.*)\.$/.exec(message)?.[1] ?? message;
      return new FlagError(`unexpected argument ${extra} (flags start with --; see --help)`);
    }
    default:
      return new FlagError(message.replace(/\s*\n\s*/g, " "));
  }
}

/** A commander Command for `specs` that throws instead of exiting and prints nothing itself. */
export function specCommand(name: string, specs: FlagSpecs): Command {
  return addSpecOptions(
    new Command(name)
      .exitOverride()
      .configureOutput({ writeOut: () => {}, writeErr: () => {}, outputError: () => {} })
      .allowExcessArguments(false),
    specs,
  );
}

/**
 * `--verbose=false` -> `--no-verbose` (commander's boolean options take no value; the old parser and
 * the environment accept true/false, yes/no, 1/0, on/off), checked like any value.
 */
function booleanAssignments(args: readonly string[], specs: FlagSpecs): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--") {
      out.push(...args.slice(i));
      break;
    }
    const m = /^--([^=]+)=(.*)$/s.exec(arg);
    const key = m && Object.keys(specs).find((k) => flagName(k) === m[1] && specs[k].type === "bool");
    if (m && key) out.push(convert(key, specs[key], m[2], "") ? `--${m[1]}` : `--no-${m[1]}`);
    else out.push(arg);
  }
  return out;
}

/** Runs commander over `args`; a parse problem is a FlagError. Returns the given options and operands. */
export function parseWith(
  command: Command,
  args: readonly string[],
  specs: FlagSpecs,
): { given: Record<string, unknown>; operands: string[] } {
  try {
    command.parse(booleanAssignments(args, specs), { from: "user" });
  } catch (e) {
    // Help and version (exit code 0) stay CommanderErrors for lib/cli/command.ts to print.
    if (e instanceof CommanderError && e.exitCode !== 0) throw flagErrorOf(e, specs);
    throw e;
  }
  const given: Record<string, unknown> = {};
  for (const key of Object.keys(specs)) {
    if (command.getOptionValueSource(key) === "cli") given[key] = command.getOptionValue(key);
  }
  return { given, operands: [...command.args] };
}

/**
 * Parses `args` against `specs` (commander does the command line). Unknown flags, missing values, bad
 * numbers and out-of-range values throw FlagError. `env` defaults to the process environment.
 */
export function parseFlags<S extends FlagSpecs>(
  args: readonly string[],
  specs: S,
  env: (name: string) => string | undefined = (name) => Deno.env.get(name),
): ParsedFlags<S> {
  const command = specCommand("flags", specs).helpOption(false).argument("[args...]");
  const { given, operands } = parseWith(command, args, specs);
  const { values, sources } = resolveFlags(specs, given, env);
  return { values, positionals: operands, sources };
}

/** One line per flag, for --help output. */
export function flagsHelp(specs: FlagSpecs): string {
  return Object.entries(specs).map(([key, spec]) => {
    const env = spec.env?.length ? ` [env ${spec.env.join(", ")}]` : "";
    const def = spec.default !== undefined ? ` (default ${JSON.stringify(spec.default)})` : "";
    return `  --${flagName(key)} <${spec.type}>${def}${env}  ${spec.description ?? ""}`.trimEnd();
  }).join("\n");
}
