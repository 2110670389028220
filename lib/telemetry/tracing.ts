/**
 * Span helpers over `@opentelemetry/api`. The provider is the global one: Deno's built-in exporter
 * when the process runs with OTEL_DENO=true (INFRA.md, "OpenTelemetry"), else the API's no-op, so
 * instrumented code costs next to nothing when tracing is off.
 */
import {
  type Attributes,
  type Context,
  context,
  type Link,
  type Span,
  SpanKind,
  SpanStatusCode,
  trace,
  type Tracer,
} from "@opentelemetry/api";
import { SCOPE_NAME } from "./attributes.ts";

export { type Span, SpanKind };

export function tracer(): Tracer {
  return trace.getTracer(SCOPE_NAME);
}

export interface SpanOptions {
  kind?: SpanKind;
  /** Parent context (default: the active one). */
  parent?: Context;
  links?: Link[];
  /** Start time as epoch milliseconds (default: now). */
  startTime?: number;
}

/** Marks `span` failed with `error` (status ERROR, exception event). */
export function failSpan(span: Span, error: unknown): void {
  const message = error instanceof Error ? error.message : String(error);
  span.recordException(error instanceof Error ? error : message);
  span.setStatus({ code: SpanStatusCode.ERROR, message });
}

/** Starts a span (not yet active). */
export function startSpan(name: string, attributes: Attributes = {}, options: SpanOptions = {}): Span {
  return tracer().startSpan(
    name,
    {
      kind: options.kind ?? SpanKind.INTERNAL,
      attributes,
      links: options.links,
      startTime: options.startTime,
    },
    options.parent ?? context.active(),
  );
}

/** Runs `fn` in a new active span; the span ends when `fn` settles (failed if it throws). */
export async function withSpan<T>(
  name: string,
  attributes: Attributes,
  fn: (span: Span) => Promise<T>,
  options: SpanOptions = {},
): Promise<T> {
  const span = startSpan(name, attributes, options);
  try {
    return await context.with(trace.setSpan(options.parent ?? context.active(), span), () => fn(span));
  } catch (error) {
    failSpan(span, error);
    throw error;
  } finally {
    span.end();
  }
}

/** Synchronous form of withSpan (CPU work such as a UNet pass on the cpu/wasm backends). */
export function withSpanSync<T>(
  name: string,
  attributes: Attributes,
  fn: (span: Span) => T,
  options: SpanOptions = {},
): T {
  const span = startSpan(name, attributes, options);
  try {
    return context.with(trace.setSpan(options.parent ?? context.active(), span), () => fn(span));
  } catch (error) {
    failSpan(span, error);
    throw error;
  } finally {
    span.end();
  }
}

/** Runs `fn` with `span` as the active span (children started inside attach to it). */
export function inSpan<T>(span: Span, fn: () => T): T {
  return context.with(trace.setSpan(context.active(), span), fn);
}

/** The active context, to be carried to work that runs later (e.g. a queued batch). */
export function activeContext(): Context {
  return context.active();
}

/** A link to the span of `ctx`, if it has a valid one. */
export function linkTo(ctx: Context, attributes?: Attributes): Link | undefined {
  const sc = trace.getSpanContext(ctx);
  return sc && trace.isSpanContextValid(sc) ? { context: sc, attributes } : undefined;
}
