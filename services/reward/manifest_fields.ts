/** Reading typed fields of a JSON manifest; every error names the field (`obj.key`). */
import { InvalidArgumentError } from "../../lib/errors.ts";

export type Json = Record<string, unknown>;

export function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

export function str(obj: Json, key: string, field: string, fallback?: string): string {
  const v = obj[key];
  if (v === undefined && fallback !== undefined) return fallback;
  if (typeof v !== "string" || v.length === 0) {
    throw new InvalidArgumentError(`${field}.${key}`, "must be a non-empty string");
  }
  return v;
}

export function num(obj: Json, key: string, field: string, fallback?: number): number {
  const v = obj[key];
  if (v === undefined && fallback !== undefined) return fallback;
  if (typeof v !== "number" || !Number.isFinite(v)) {
    throw new InvalidArgumentError(`${field}.${key}`, "must be a finite number");
  }
  return v;
}

export function int(obj: Json, key: string, field: string, fallback: number, min: number): number {
  const v = num(obj, key, field, fallback);
  if (!Number.isInteger(v) || v < min) {
    throw new InvalidArgumentError(`${field}.${key}`, `must be an integer >= ${min}, got ${v}`);
  }
  return v;
}

export function triple(
  obj: Json,
  key: string,
  field: string,
  fallback: [number, number, number],
): [number, number, number] {
  const v = obj[key];
  if (v === undefined) return fallback;
  if (!Array.isArray(v) || v.length !== 3 || !v.every((x) => typeof x === "number" && Number.isFinite(x))) {
    throw new InvalidArgumentError(`${field}.${key}`, "must be an array of 3 finite numbers");
  }
  return v as [number, number, number];
}
