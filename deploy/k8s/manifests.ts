/**
 * The Kubernetes manifests as data: renders an overlay of deploy/k8s with `kubectl kustomize`, parses
 * the objects, and validates each one against the Kubernetes API schemas with `kubernetes-models`
 * (its generated JSON-schema validators; unknown kinds are an error, not a pass).
 *
 *   deno task k8s:validate                 every overlay: render, validate, print a table
 *   deno task k8s:validate cpu-dev         one overlay (or several: base cpu-dev)
 *
 * `RDPO_KUBECTL` names the kubectl binaries to render with, separated by ":" (default `kubectl`);
 * with several (Debian's kubectl 1.20 = kustomize v2, and a current one = v5) every overlay must
 * render to the same objects with each (INFRA.md, "Containers and Kubernetes").
 */
import { join } from "node:path";
import process from "node:process";
import { parseAllDocuments } from "yaml";
import type { IPodTemplateSpec } from "kubernetes-models/v1";
import { run } from "../../test/support/container_env.ts";
import { type CommandSpec, runCommand } from "../../lib/cli/command.ts";
import { FlagError, type FlagSpecs } from "../../lib/rpc/flags.ts";
import { FailedPreconditionError } from "../../lib/errors.ts";

/**
 * kubernetes-models, loaded with Node's deprecation warnings off for the length of this import only.
 * Its validators (@kubernetes-models/validate) load ajv-formats-draft2019, whose
 * formats/idn-hostname.js does `require("punycode")`: Node's deprecated built-in, which prints
 * "[DEP0040] DeprecationWarning: The `punycode` module is deprecated" once, on load, into every
 * output that renders manifests (only that format uses it, and no Kubernetes field has it). The flag
 * (`process.noDeprecation`, Node's documented switch) is restored right after, so deprecations
 * anywhere else still print.
 */
async function importQuietly<T>(load: () => Promise<T>): Promise<T> {
  // Node's Process has it (`--no-deprecation` sets it); Deno's node types leave it out.
  const node = process as typeof process & { noDeprecation?: boolean };
  const before = node.noDeprecation;
  node.noDeprecation = true;
  try {
    return await load();
  } finally {
    node.noDeprecation = before;
  }
}
const [v1, appsV1, batchV1, autoscalingV2, policyV1] = await importQuietly(() =>
  Promise.all([
    import("kubernetes-models/v1"),
    import("kubernetes-models/apps/v1"),
    import("kubernetes-models/batch/v1"),
    import("kubernetes-models/autoscaling/v2"),
    import("kubernetes-models/policy/v1"),
  ])
);

export const K8S_DIR = import.meta.dirname!;
/** The overlays under deploy/k8s/overlays, and the base. */
export const OVERLAYS = ["cpu-dev", "multi-gpu", "observability"] as const;
export type Overlay = (typeof OVERLAYS)[number] | "base";

/** A rendered object: apiVersion, kind, metadata and the rest as kubectl printed them. */
export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  // deno-lint-ignore no-explicit-any
  [key: string]: any;
}

/** A kubernetes-models class: construct it from the object, then `validate()` throws on schema errors. */
type ModelClass = new (data: never) => { validate(): void };
/** Every kind the manifests use, by "apiVersion/kind". Anything else fails validation. */
const MODELS: Record<string, ModelClass> = {
  "v1/Namespace": v1.Namespace,
  "v1/ConfigMap": v1.ConfigMap,
  "v1/Secret": v1.Secret,
  "v1/Service": v1.Service,
  "v1/PersistentVolumeClaim": v1.PersistentVolumeClaim,
  "apps/v1/Deployment": appsV1.Deployment,
  "apps/v1/StatefulSet": appsV1.StatefulSet,
  "batch/v1/Job": batchV1.Job,
  "autoscaling/v2/HorizontalPodAutoscaler": autoscalingV2.HorizontalPodAutoscaler,
  "policy/v1/PodDisruptionBudget": policyV1.PodDisruptionBudget,
};

/** "Kind/name" of an object, for messages. */
export function objectId(o: K8sObject): string {
  return `${o.kind}/${o.metadata?.name}`;
}

/** The kubectl binaries to render with (`list`, else RDPO_KUBECTL; ":"-separated; default `kubectl`). */
export function kubectlBinaries(list = Deno.env.get("RDPO_KUBECTL") ?? "kubectl"): string[] {
  return list.split(":").filter(Boolean);
}

/** Why `kubectl kustomize` cannot run here, or null when every binary answers `version --client`. */
export async function kubectlSkipReason(bins = kubectlBinaries()): Promise<string | null> {
  for (const bin of bins) {
    const v = await run(bin, ["version", "--client"], { timeoutMs: 20_000 });
    if (v.code !== 0) return `${bin} version --client failed: ${v.output.trim().split("\n")[0]}`;
  }
  return null;
}

/** Parses kubectl's multi-document output; empty documents (v2 leaves `{}` for `$patch: delete`) are dropped. */
export function parseObjects(text: string, source: string): K8sObject[] {
  const docs = parseAllDocuments(text);
  const objects: K8sObject[] = [];
  for (const doc of docs) {
    if (doc.errors.length > 0) throw new Error(`${source}: ${doc.errors[0].message}`);
    const value = doc.toJS();
    if (value === null || value === undefined || Object.keys(value).length === 0) continue;
    objects.push(value as K8sObject);
  }
  return objects;
}

/** `kubectl kustomize` of an overlay (or the base), parsed. Throws with kubectl's output on failure. */
export async function renderOverlay(overlay: Overlay, kubectl = kubectlBinaries()[0]): Promise<K8sObject[]> {
  const dir = overlay === "base" ? join(K8S_DIR, "base") : join(K8S_DIR, "overlays", overlay);
  const out = await run(kubectl, ["kustomize", dir], { timeoutMs: 60_000 });
  if (out.code !== 0) throw new Error(`${kubectl} kustomize ${dir} failed:\n${out.output}`);
  // stdout comes first; v5 prints deprecation warnings on stderr, after it, starting with "# Warning".
  const yaml = out.output.split("\n").filter((l) => !l.startsWith("# Warning:")).join("\n");
  return parseObjects(yaml, `${kubectl} kustomize ${overlay}`);
}

/**
 * Validates each object against its Kubernetes schema; returns one message per invalid object
 * (empty: all valid). An apiVersion/kind without a model here is reported, not skipped.
 */
export function validateObjects(objects: K8sObject[]): string[] {
  const problems: string[] = [];
  for (const o of objects) {
    const model = MODELS[`${o.apiVersion}/${o.kind}`];
    if (!model) {
      problems.push(`${objectId(o)}: no schema for ${o.apiVersion} ${o.kind}`);
      continue;
    }
    try {
      new model(o as never).validate();
    } catch (e) {
      problems.push(`${objectId(o)}: ${(e as Error).message}`);
    }
  }
  return problems;
}

/** Objects in a canonical order with sorted keys, so two renders compare as text. */
export function canonical(objects: K8sObject[]): string {
  const sortKeys = (v: unknown): unknown =>
    Array.isArray(v)
      ? v.map(sortKeys)
      : v !== null && typeof v === "object"
      ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortKeys((v as Record<string, unknown>)[k])]))
      : v;
  return [...objects]
    .sort((a, b) => objectId(a).localeCompare(objectId(b)))
    .map((o) => JSON.stringify(sortKeys(o)))
    .join("\n");
}

/** The object of `kind` named `name`, or an error listing what there is. */
export function findObject(objects: K8sObject[], kind: string, name: string): K8sObject {
  const o = objects.find((x) => x.kind === kind && x.metadata.name === name);
  if (!o) throw new Error(`no ${kind}/${name} among ${objects.map(objectId).join(", ")}`);
  return o;
}

/** The pod template of a Deployment, StatefulSet or Job; undefined for other kinds. */
export function podTemplate(o: K8sObject): IPodTemplateSpec | undefined {
  return ["Deployment", "StatefulSet", "Job"].includes(o.kind) ? o.spec?.template : undefined;
}

/** Renders and validates `overlays` with every binary of `bins`; prints a table; 0 when all pass. */
async function main(overlays: Overlay[], bins: string[]): Promise<number> {
  const rows: string[][] = [];
  let failed = 0;
  for (const overlay of overlays) {
    const renders = [];
    for (const bin of bins) renders.push(await renderOverlay(overlay, bin));
    const objects = renders[0];
    const problems = validateObjects(objects);
    const same = renders.every((r) => canonical(r) === canonical(objects));
    if (problems.length > 0 || !same) failed++;
    for (const p of problems) console.error(`${overlay}: ${p}`);
    if (!same) console.error(`${overlay}: ${bins.join(" and ")} render different objects`);
    const kinds = new Map<string, number>();
    for (const o of objects) kinds.set(o.kind, (kinds.get(o.kind) ?? 0) + 1);
    rows.push([
      overlay,
      String(objects.length),
      String(objects.length - problems.length),
      bins.length > 1 ? (same ? "yes" : "NO") : "-",
      [...kinds].map(([k, n]) => `${k} ${n}`).join(", "),
    ]);
  }
  const head = ["overlay", "objects", "valid", "same render", "kinds"];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(widths[i])).join(" | ")} |`;
  console.log(`rendered with: ${bins.join(", ")}`);
  console.log(
    [line(head), `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`, ...rows.map(line)].join("\n"),
  );
  return failed === 0 ? 0 : 1;
}

export const K8S_VALIDATE_FLAGS = {
  kubectl: {
    type: "string",
    env: ["RDPO_KUBECTL"],
    default: "kubectl",
    description: 'kubectl binaries to render with, ":"-separated; with several, every render must match',
  },
} as const satisfies FlagSpecs;

export const K8S_VALIDATE_COMMAND: CommandSpec<typeof K8S_VALIDATE_FLAGS> = {
  name: "k8s:validate",
  summary: "render deploy/k8s overlays with kubectl kustomize and validate every object (kubernetes-models)",
  description: `OVERLAY: one or more of base, ${OVERLAYS.join(", ")} (default: all). Exit 1 when an object ` +
    "is invalid or the kubectl binaries render different objects.",
  flags: K8S_VALIDATE_FLAGS,
  args: "[overlay...]",
  examples: [
    "deno task k8s:validate",
    "RDPO_KUBECTL=/opt/kubectl-1.20/kubectl:kubectl deno task k8s:validate cpu-dev",
  ],
  async run(values, overlays) {
    const known: readonly string[] = ["base", ...OVERLAYS];
    for (const o of overlays) {
      if (!known.includes(o)) throw new FlagError(`overlay "${o}" is not one of ${known.join(", ")}`);
    }
    const bins = kubectlBinaries(values.kubectl);
    if (bins.length === 0) throw new FlagError(`--kubectl: "${values.kubectl}" names no binary`);
    // A missing or broken kubectl is the user's to fix: one line (exit 2), not a stack trace.
    const skip = await kubectlSkipReason(bins);
    if (skip) throw new FailedPreconditionError(`--kubectl: ${skip}`);
    const code = await main(overlays.length > 0 ? overlays as Overlay[] : ["base", ...OVERLAYS], bins);
    if (code !== 0) Deno.exit(code);
  },
};

if (import.meta.main) await runCommand(K8S_VALIDATE_COMMAND);
