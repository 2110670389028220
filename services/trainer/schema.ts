/**
 * A small declarative schema for the trainer's run config: types, ranges, allowed values and
 * defaults in one table, so every error names the field path and what is allowed, and an unknown
 * key comes back with the closest known key as a suggestion. Validation collects every problem
 * instead of stopping at the first.
 */
import { InvalidArgumentError } from "../../lib/errors.ts";

interface FieldBase {
  /** One line saying what the field is (shown by describeSchema). */
  doc?: string;
  /** Accept null as a value (and use it when the field is absent and default is null). */
  nullable?: boolean;
  /** Absent -> error, instead of taking the default. */
  required?: boolean;
}

export interface NumberField extends FieldBase {
  kind: "number";
  default?: number | null;
  integer?: boolean;
  min?: number;
  max?: number;
  /** min/max exclusive instead of inclusive. */
  exclusiveMin?: boolean;
  exclusiveMax?: boolean;
}

export interface StringField extends FieldBase {
  kind: "string";
  default?: string | null;
  /** Must match; `patternDoc` says in words what is expected. */
  pattern?: RegExp;
  patternDoc?: string;
}

export interface EnumField extends FieldBase {
  kind: "enum";
  values: readonly string[];
  default?: string | null;
}

export interface BooleanField extends FieldBase {
  kind: "boolean";
  default?: boolean;
}

export interface ListField extends FieldBase {
  kind: "list";
  item: Field;
  default?: unknown[] | null;
  minLength?: number;
  maxLength?: number;
  unique?: boolean;
}

export interface ObjectField extends FieldBase {
  kind: "object";
  fields: Record<string, Field>;
}

/** Escape hatch for values with several shapes (e.g. a list of step numbers or "all"). */
export interface CustomField extends FieldBase {
  kind: "custom";
  default?: unknown;
  /** Returns the validated value, or pushes issues and returns anything. */
  validate(value: unknown, path: string, issues: ConfigIssue[]): unknown;
  /** Words for describeSchema, e.g. `list of integers or "all"`. */
  typeDoc: string;
}

export type Field =
  | NumberField
  | StringField
  | EnumField
  | BooleanField
  | ListField
  | ObjectField
  | CustomField;

export interface ConfigIssue {
  /** Dotted path with list indices, e.g. `scorers[1].weight`. */
  path: string;
  message: string;
}

/** A config that failed validation; `issues` lists every problem found. */
export class ConfigError extends InvalidArgumentError {
  readonly issues: ConfigIssue[];
  constructor(issues: ConfigIssue[]) {
    const single = issues.length === 1;
    super(
      single ? issues[0].path : "",
      single ? issues[0].message : `invalid config (${issues.length} problems):\n` +
        issues.map((i) => `  - ${formatIssue(i)}`).join("\n"),
    );
    this.name = "ConfigError";
    this.issues = issues;
  }
}

export function formatIssue(issue: ConfigIssue): string {
  return issue.path ? `${issue.path}: ${issue.message}` : issue.message;
}

export function joinPath(path: string, key: string | number): string {
  if (typeof key === "number") return `${path}[${key}]`;
  return path ? `${path}.${key}` : key;
}

/** Edit distance (insert, delete, substitute), for "did you mean" suggestions. */
export function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0];
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j];
      prev[j] = Math.min(prev[j] + 1, prev[j - 1] + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return prev[b.length];
}

/** The closest candidate when it is plausibly a typo, else undefined. */
export function suggest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  const lower = word.toLowerCase();
  for (const c of candidates) {
    const d = editDistance(lower, c.toLowerCase());
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  const limit = Math.max(2, Math.floor(word.length / 3));
  if (bestDistance <= limit) return best;
  // A long shared beginning also reads as a slip ("sampler" for "sampling").
  let bestPrefix = 0;
  for (const c of candidates) {
    let n = 0;
    while (n < lower.length && n < c.length && lower[n] === c[n].toLowerCase()) n++;
    if (n > bestPrefix) {
      bestPrefix = n;
      best = c;
    }
  }
  return bestPrefix >= 4 && bestPrefix * 2 >= word.length ? best : undefined;
}

function describeValue(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (Array.isArray(value)) return "a list";
  if (value === null) return "null";
  if (typeof value === "object") return "an object";
  return `${typeof value} ${String(value)}`;
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

function clone<T>(value: T): T {
  return value === undefined ? value : structuredClone(value);
}

function rangeText(f: NumberField): string {
  const parts: string[] = [];
  if (f.min !== undefined) parts.push(`${f.exclusiveMin ? ">" : ">="} ${f.min}`);
  if (f.max !== undefined) parts.push(`${f.exclusiveMax ? "<" : "<="} ${f.max}`);
  return parts.join(" and ");
}

/**
 * Validates `value` against `field`, filling defaults. Problems are appended to `issues`; the
 * returned value is only meaningful when no issue was added.
 */
export function validateField(field: Field, value: unknown, path: string, issues: ConfigIssue[]): unknown {
  if (value === undefined) {
    if (field.required) {
      issues.push({ path, message: `required (${typeDoc(field)})` });
      return undefined;
    }
    if (field.kind === "object") return validateField(field, {}, path, issues);
    if ("default" in field && field.default !== undefined) return clone(field.default);
    if (field.nullable) return null;
    issues.push({ path, message: `required (${typeDoc(field)})` });
    return undefined;
  }
  if (value === null) {
    if (field.nullable) return null;
    issues.push({ path, message: `must not be null (${typeDoc(field)})` });
    return undefined;
  }
  switch (field.kind) {
    case "number": {
      if (typeof value !== "number" || !Number.isFinite(value)) {
        issues.push({ path, message: `expected a finite number, got ${describeValue(value)}` });
        return undefined;
      }
      if (field.integer && !Number.isSafeInteger(value)) {
        issues.push({ path, message: `expected an integer, got ${value}` });
        return undefined;
      }
      const low = field.min !== undefined && (field.exclusiveMin ? value <= field.min : value < field.min);
      const high = field.max !== undefined && (field.exclusiveMax ? value >= field.max : value > field.max);
      if (low || high) {
        issues.push({ path, message: `${value} is out of range: must be ${rangeText(field)}` });
        return undefined;
      }
      return value;
    }
    case "string": {
      if (typeof value !== "string") {
        issues.push({ path, message: `expected a string, got ${describeValue(value)}` });
        return undefined;
      }
      if (field.pattern && !field.pattern.test(value)) {
        issues.push({
          path,
          message: `${JSON.stringify(value)} is not valid: expected ${field.patternDoc ?? field.pattern}`,
        });
        return undefined;
      }
      return value;
    }
    case "enum": {
      if (typeof value !== "string" || !field.values.includes(value)) {
        const hint = typeof value === "string" ? suggest(value, field.values) : undefined;
        issues.push({
          path,
          message: `${describeValue(value)} is not one of ${field.values.join(", ")}` +
            (hint ? ` (did you mean "${hint}"?)` : ""),
        });
        return undefined;
      }
      return value;
    }
    case "boolean": {
      if (typeof value !== "boolean") {
        issues.push({ path, message: `expected true or false, got ${describeValue(value)}` });
        return undefined;
      }
      return value;
    }
    case "list": {
      if (!Array.isArray(value)) {
        issues.push({ path, message: `expected a list, got ${describeValue(value)}` });
        return undefined;
      }
      if (field.minLength !== undefined && value.length < field.minLength) {
        issues.push({ path, message: `needs at least ${field.minLength} item(s), got ${value.length}` });
      }
      if (field.maxLength !== undefined && value.length > field.maxLength) {
        issues.push({ path, message: `allows at most ${field.maxLength} item(s), got ${value.length}` });
      }
      const out = value.map((v, i) => validateField(field.item, v, joinPath(path, i), issues));
      if (field.unique) {
        const seen = new Set<string>();
        out.forEach((v, i) => {
          const key = JSON.stringify(v);
          if (seen.has(key)) issues.push({ path: joinPath(path, i), message: `duplicate value ${key}` });
          seen.add(key);
        });
      }
      return out;
    }
    case "object": {
      if (!isPlainObject(value)) {
        issues.push({ path, message: `expected an object (mapping), got ${describeValue(value)}` });
        return undefined;
      }
      const known = Object.keys(field.fields);
      for (const key of Object.keys(value)) {
        if (!(key in field.fields)) {
          const hint = suggest(key, known);
          issues.push({
            path: joinPath(path, key),
            message: hint
              ? `unknown key (did you mean "${hint}"?)`
              : `unknown key; known keys: ${known.join(", ")}`,
          });
        }
      }
      const out: Record<string, unknown> = {};
      for (const key of known) {
        out[key] = validateField(field.fields[key], value[key], joinPath(path, key), issues);
      }
      return out;
    }
    case "custom":
      return field.validate(value, path, issues);
  }
}

/** The field's type in words, e.g. `integer >= 1` or `one of ddim, ddpm`. */
export function typeDoc(field: Field): string {
  const nullable = field.nullable ? " or null" : "";
  switch (field.kind) {
    case "number": {
      const range = rangeText(field);
      return `${field.integer ? "integer" : "number"}${range ? " " + range : ""}${nullable}`;
    }
    case "string":
      return `${field.patternDoc ?? "string"}${nullable}`;
    case "enum":
      return `one of ${field.values.join(", ")}${nullable}`;
    case "boolean":
      return "true or false";
    case "list":
      return `list of ${typeDoc(field.item)}${nullable}`;
    case "object":
      return `{${Object.keys(field.fields).join(", ")}}`;
    case "custom":
      return field.typeDoc + nullable;
  }
}

/** One line per leaf field: `path  type  default  doc`, for --help and the README. */
export function describeSchema(field: Field, path = ""): string[] {
  if (field.kind === "object") {
    return Object.entries(field.fields).flatMap(([k, f]) => describeSchema(f, joinPath(path, k)));
  }
  const def = "default" in field && field.default !== undefined
    ? ` (default ${JSON.stringify(field.default)})`
    : field.required
    ? " (required)"
    : "";
  return [`${path}: ${typeDoc(field)}${def}${field.doc ? ` - ${field.doc}` : ""}`];
}

/** Deep merge of plain objects: `override` wins; lists and scalars are replaced, not merged. */
export function deepMerge(base: unknown, override: unknown): unknown {
  if (override === undefined) return clone(base);
  if (isPlainObject(base) && isPlainObject(override)) {
    const out: Record<string, unknown> = {};
    for (const k of new Set([...Object.keys(base), ...Object.keys(override)])) {
      out[k] = deepMerge(base[k], override[k]);
    }
    return out;
  }
  return clone(override);
}

/** Dotted paths of every leaf (non-object value) set in a raw object. */
export function leafPaths(value: unknown, path = ""): string[] {
  if (!isPlainObject(value)) return path ? [path] : [];
  return Object.entries(value).flatMap(([k, v]) => leafPaths(v, joinPath(path, k)));
}

/** JSON with object keys sorted at every level: the canonical text hashed for config identity. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (isPlainObject(value)) {
    const keys = Object.keys(value).filter((k) => value[k] !== undefined).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(value[k])}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

/** Throws a ConfigError when there are issues. */
export function throwIfIssues(issues: ConfigIssue[]): void {
  if (issues.length) throw new ConfigError(issues);
}
