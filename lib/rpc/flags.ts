/**
 * Command-line flags with environment fallbacks, shared by every service's main.ts.
 *
 * Precedence: `--flag` on the command line, then the first set environment variable of `env`,
 * then `default`. Syntax: `--name value`, `--name=value`; booleans also `--name`, `--no-name`.
 * Every problem is a FlagError whose message names the flag (and the variable it came from).
 */

export type FlagType = "string" | "number" | "int" | "bool";

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
  : number;

/** Parsed values keyed like the specs (camelCase keys; the flag is the kebab-case form). */
export type FlagValues<S extends FlagSpecs> = {
  [K in keyof S]: S[K] extends { default: unknown } | { required: true } | { type: "bool" } ? ValueOf<S[K]>
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
      if (!Number.isFinite(n)) throw new FlagError(`${where}: "${raw}" is not a number`);
      if (spec.type === "int" && !Number.isInteger(n)) {
        throw new FlagError(`${where}: "${raw}" is not an integer`);
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
}

/**
 * Parses `args` against `specs`. Unknown flags, missing values, bad numbers and out-of-range values
 * throw FlagError. `env` defaults to the process environment.
 */
export function parseFlags<S extends FlagSpecs>(
  args: readonly string[],
  specs: S,
  env: (name: string) => string | undefined = (name) => Deno.env.get(name),
): ParsedFlags<S> {
  const byFlag = new Map(Object.keys(specs).map((key) => [flagName(key), key]));
  const fromArgs = new Map<string, string | number | boolean>();
  const positionals: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--") {
      positionals.push(...args.slice(i + 1));
      break;
    }
    if (!arg.startsWith("--")) {
      positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf("=");
    let name = eq >= 0 ? arg.slice(2, eq) : arg.slice(2);
    let inline: string | undefined = eq >= 0 ? arg.slice(eq + 1) : undefined;
    let key = byFlag.get(name);
    if (key === undefined && name.startsWith("no-") && inline === undefined) {
      const positive = byFlag.get(name.slice(3));
      if (positive !== undefined && specs[positive].type === "bool") {
        key = positive;
        name = name.slice(3);
        inline = "false";
      }
    }
    if (key === undefined) {
      const known = [...byFlag.keys()].map((f) => `--${f}`).join(", ");
      throw new FlagError(`--${name}: unknown flag (known: ${known})`);
    }
    const spec = specs[key];
    if (inline === undefined) {
      if (spec.type === "bool") {
        inline = "true";
      } else {
        if (i + 1 >= args.length) throw new FlagError(`--${name}: missing value`);
        inline = args[++i];
      }
    }
    fromArgs.set(key, convert(key, spec, inline, ""));
  }

  const values: Record<string, string | number | boolean | undefined> = {};
  for (const [key, spec] of Object.entries(specs)) {
    if (fromArgs.has(key)) {
      values[key] = fromArgs.get(key);
      continue;
    }
    const envName = (spec.env ?? []).find((name) => env(name) !== undefined);
    if (envName !== undefined) {
      values[key] = convert(key, spec, env(envName) as string, `env ${envName}`);
    } else if (spec.default !== undefined) {
      values[key] = spec.default;
    } else if (spec.type === "bool") {
      values[key] = false;
    } else if (spec.required) {
      const envHint = spec.env?.length ? ` or set ${spec.env.join(" / ")}` : "";
      throw new FlagError(`--${flagName(key)}: required${envHint}`);
    } else {
      values[key] = undefined;
    }
  }
  return { values: values as FlagValues<S>, positionals };
}

/** One line per flag, for --help output. */
export function flagsHelp(specs: FlagSpecs): string {
  return Object.entries(specs).map(([key, spec]) => {
    const env = spec.env?.length ? ` [env ${spec.env.join(", ")}]` : "";
    const def = spec.default !== undefined ? ` (default ${JSON.stringify(spec.default)})` : "";
    return `  --${flagName(key)} <${spec.type}>${def}${env}  ${spec.description ?? ""}`.trimEnd();
  }).join("\n");
}
