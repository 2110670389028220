/**
 * The `attributes` of an attribute_classifier manifest (BUNDLES.md): heads, their classes and prompt
 * patterns, and the presence condition of the heads that describe an object.
 */
import { InvalidArgumentError } from "../../lib/errors.ts";
import type { AttributeSpec, PresenceSpec } from "./bundle_types.ts";
import { isObject, str } from "./manifest_fields.ts";

export function parseAttributes(raw: unknown): AttributeSpec[] {
  if (!Array.isArray(raw) || raw.length === 0) {
    throw new InvalidArgumentError("attributes", "must be a non-empty array of {name, classes, patterns}");
  }
  return raw.map((a, i) => {
    const field = `attributes[${i}]`;
    if (!isObject(a)) throw new InvalidArgumentError(field, "must be an object {name, classes, patterns}");
    const name = str(a, "name", field);
    const strings = (key: string) => {
      const v = a[key];
      if (!Array.isArray(v) || v.length < 2 || !v.every((x) => typeof x === "string" && x.length > 0)) {
        throw new InvalidArgumentError(`${field}.${key}`, "must be an array of at least 2 non-empty strings");
      }
      return v as string[];
    };
    const classes = strings("classes");
    const patterns = strings("patterns");
    if (patterns.length !== classes.length) {
      throw new InvalidArgumentError(
        `${field}.patterns`,
        `must have one pattern per class (${classes.length}), got ${patterns.length}`,
      );
    }
    patterns.forEach((p, k) => {
      try {
        new RegExp(p);
      } catch (e) {
        throw new InvalidArgumentError(
          `${field}.patterns[${k}]`,
          `is not a regular expression: ${(e as Error).message}`,
        );
      }
    });
    const presence = a.presence === undefined ? undefined : parsePresence(a.presence, `${field}.presence`);
    return presence ? { name, classes, patterns, presence } : { name, classes, patterns };
  }).map((a, i, all) => {
    if (a.presence) checkPresence(a.presence, all, i);
    return a;
  });
}

function parsePresence(raw: unknown, field: string): PresenceSpec {
  if (!isObject(raw)) throw new InvalidArgumentError(field, "must be an object {head, absent}");
  return { head: str(raw, "head", field), absent: str(raw, "absent", field) };
}

/** A presence head must exist, differ from the head itself, have the class, and be unconditional. */
function checkPresence(p: PresenceSpec, all: AttributeSpec[], i: number): void {
  const field = `attributes[${i}].presence`;
  const h = all.findIndex((a) => a.name === p.head);
  if (h < 0) throw new InvalidArgumentError(`${field}.head`, `names no head: ${JSON.stringify(p.head)}`);
  if (h === i) throw new InvalidArgumentError(`${field}.head`, "must name another head");
  if (all[h].presence) {
    throw new InvalidArgumentError(`${field}.head`, `${JSON.stringify(p.head)} is itself conditional`);
  }
  if (!all[h].classes.includes(p.absent)) {
    throw new InvalidArgumentError(
      `${field}.absent`,
      `is not a class of ${JSON.stringify(p.head)}: ${JSON.stringify(p.absent)}`,
    );
  }
}
