/**
 * Trace trees from received spans (otlp_traces.ts): parent/child structure across processes, and a
 * text rendering with start offsets and durations, for tests and for reading one RDPO step.
 */
import { type AttrValue, type OtlpSpan, OtlpSpanKind, spanDurationMs } from "./otlp_traces.ts";

export interface TraceNode {
  span: OtlpSpan;
  children: TraceNode[];
}

/**
 * The trees of `spans` (children sorted by start time). A span whose parent is not among `spans`
 * is a root (for a partial export that includes spans whose parent was never received).
 */
export function buildTrees(spans: readonly OtlpSpan[]): TraceNode[] {
  const nodes = new Map<string, TraceNode>();
  for (const span of spans) nodes.set(`${span.traceId}/${span.spanId}`, { span, children: [] });
  const roots: TraceNode[] = [];
  for (const node of nodes.values()) {
    const parent = node.span.parentSpanId
      ? nodes.get(`${node.span.traceId}/${node.span.parentSpanId}`)
      : undefined;
    if (parent) parent.children.push(node);
    else roots.push(node);
  }
  const byStart = (a: TraceNode, b: TraceNode) =>
    a.span.startUnixNano < b.span.startUnixNano ? -1 : a.span.startUnixNano > b.span.startUnixNano ? 1 : 0;
  for (const node of nodes.values()) node.children.sort(byStart);
  return roots.sort(byStart);
}

/** The chain from `span` up to its root within `spans` (span first). */
export function ancestry(spans: readonly OtlpSpan[], span: OtlpSpan): OtlpSpan[] {
  const byId = new Map(spans.filter((s) => s.traceId === span.traceId).map((s) => [s.spanId, s]));
  const chain = [span];
  const seen = new Set([span.spanId]);
  let current = span;
  while (current.parentSpanId && byId.has(current.parentSpanId) && !seen.has(current.parentSpanId)) {
    current = byId.get(current.parentSpanId)!;
    seen.add(current.spanId);
    chain.push(current);
  }
  return chain;
}

/** Depth-first list of a tree's nodes. */
export function flatten(node: TraceNode): TraceNode[] {
  return [node, ...node.children.flatMap(flatten)];
}

const KIND_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(OtlpSpanKind).map(([name, n]) => [n, name.toLowerCase()]),
);

function formatValue(v: AttrValue): string {
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : v.toFixed(3);
  if (typeof v === "string") return v;
  if (v === null) return "null";
  if (typeof v === "bigint" || typeof v === "boolean") return String(v);
  return JSON.stringify(v, (_k, x) => (typeof x === "bigint" ? String(x) : x));
}

export interface FormatOptions {
  /** Attribute keys shown after a span, when present (default: none). */
  attributes?: readonly string[];
  /** Show events as indented lines (default true). */
  events?: boolean;
  /** Spans not to print (their children move up one level), e.g. Deno's own HTTP/2 spans. */
  hide?: (span: OtlpSpan) => boolean;
}

/**
 * One line per span: indentation by depth, name, kind (server/client), the process's
 * service.name, start offset from the root and duration in ms, then the chosen attributes.
 */
export function formatTree(root: TraceNode, options: FormatOptions = {}): string {
  const lines: string[] = [];
  const t0 = root.span.startUnixNano;
  const keys = options.attributes ?? [];
  const walk = (node: TraceNode, depth: number) => {
    const s = node.span;
    if (depth > 0 && options.hide?.(s)) {
      for (const child of node.children) walk(child, depth);
      return;
    }
    const indent = "  ".repeat(depth);
    const kind = KIND_NAMES[s.kind] && s.kind !== OtlpSpanKind.INTERNAL ? ` (${KIND_NAMES[s.kind]})` : "";
    const service = s.resource["service.name"] ?? "?";
    const offset = Number(s.startUnixNano - t0) / 1e6;
    const attrs = keys.filter((k) => k in s.attributes).map((k) => `${k}=${formatValue(s.attributes[k])}`);
    const status = s.status.code === 2 ? ` ERROR(${s.status.message})` : "";
    lines.push(
      `${indent}${s.name}${kind} [${formatValue(service)}] +${offset.toFixed(1)} ms, ${
        spanDurationMs(s).toFixed(1)
      } ms${attrs.length ? `  ${attrs.join(" ")}` : ""}${status}`,
    );
    if (options.events ?? true) {
      for (const e of s.events) {
        const at = Number(e.timeUnixNano - t0) / 1e6;
        const ea = Object.entries(e.attributes).map(([k, v]) => `${k}=${formatValue(v)}`).join(" ");
        lines.push(`${indent}  * event ${e.name} +${at.toFixed(1)} ms${ea ? `  ${ea}` : ""}`);
      }
    }
    for (const child of node.children) walk(child, depth + 1);
  };
  walk(root, 0);
  return lines.join("\n");
}
