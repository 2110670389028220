/**
 * A minimal decoder of OTLP/HTTP protobuf trace exports (opentelemetry-proto,
 * collector/trace/v1 ExportTraceServiceRequest), enough for tests and the trace printer to read
 * what Deno's built-in exporter sends: spans with ids, parent, name, kind, times, attributes,
 * events, links, status, and the resource attributes (service.name) of their process.
 * Unknown fields are skipped, as protobuf requires.
 */
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";

export type AttrValue =
  | string
  | number
  | bigint
  | boolean
  | Uint8Array
  | AttrValue[]
  | { [key: string]: AttrValue }
  | null;

export type Attrs = Record<string, AttrValue>;

export interface OtlpEvent {
  name: string;
  timeUnixNano: bigint;
  attributes: Attrs;
}

export interface OtlpLink {
  traceId: string;
  spanId: string;
  attributes: Attrs;
}

/** Span kinds as numbered in the OTLP proto (0 = unspecified). */
export const OtlpSpanKind = { INTERNAL: 1, SERVER: 2, CLIENT: 3, PRODUCER: 4, CONSUMER: 5 } as const;

export interface OtlpSpan {
  /** Lower-case hex, 32 digits. */
  traceId: string;
  /** Lower-case hex, 16 digits. */
  spanId: string;
  /** "" for a root span. */
  parentSpanId: string;
  name: string;
  kind: number;
  startUnixNano: bigint;
  endUnixNano: bigint;
  attributes: Attrs;
  events: OtlpEvent[];
  links: OtlpLink[];
  /** 0 unset, 1 ok, 2 error. */
  status: { code: number; message: string };
  /** Attributes of the exporting process (service.name, ...). */
  resource: Attrs;
  /** Instrumentation scope name. */
  scope: string;
}

/** Duration of a span in milliseconds. */
export function spanDurationMs(span: OtlpSpan): number {
  return Number(span.endUnixNano - span.startUnixNano) / 1e6;
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function toBigInt(v: bigint | string): bigint {
  return typeof v === "bigint" ? v : BigInt(v);
}

/** int64 attribute values as numbers when they fit exactly, else bigint. */
function intValue(v: bigint | string): number | bigint {
  const b = toBigInt(v);
  return b >= BigInt(Number.MIN_SAFE_INTEGER) && b <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(b) : b;
}

/** Iterates the fields of one message; `on` returns false for fields it does not handle. */
function readFields(
  bytes: Uint8Array,
  what: string,
  on: (no: number, wt: WireType, r: BinaryReader) => boolean,
): void {
  const r = new BinaryReader(bytes);
  while (r.pos < r.len) {
    const [no, wt] = r.tag();
    const start = r.pos;
    if (!on(no, wt, r)) {
      r.pos = start;
      r.skip(wt, no);
    } else if (r.pos > r.len) {
      throw new Error(`${what}: field ${no} runs past the end of the message`);
    }
  }
}

function isLen(wt: WireType): boolean {
  return wt === WireType.LengthDelimited;
}

function decodeAnyValue(bytes: Uint8Array): AttrValue {
  let value: AttrValue = null;
  readFields(bytes, "AnyValue", (no, wt, r) => {
    if (no === 1 && isLen(wt)) value = r.string();
    else if (no === 2 && wt === WireType.Varint) value = r.bool();
    else if (no === 3 && wt === WireType.Varint) value = intValue(r.int64());
    else if (no === 4 && wt === WireType.Bit64) value = r.double();
    else if (no === 5 && isLen(wt)) {
      const items: AttrValue[] = [];
      readFields(r.bytes(), "ArrayValue", (n, w, rr) => {
        if (n !== 1 || !isLen(w)) return false;
        items.push(decodeAnyValue(rr.bytes()));
        return true;
      });
      value = items;
    } else if (no === 6 && isLen(wt)) value = decodeKeyValues(r.bytes(), 1);
    else if (no === 7 && isLen(wt)) value = r.bytes().slice();
    else return false;
    return true;
  });
  return value;
}

function decodeKeyValue(bytes: Uint8Array): [string, AttrValue] {
  let key = "";
  let value: AttrValue = null;
  readFields(bytes, "KeyValue", (no, wt, r) => {
    if (no === 1 && isLen(wt)) key = r.string();
    else if (no === 2 && isLen(wt)) value = decodeAnyValue(r.bytes());
    else return false;
    return true;
  });
  return [key, value];
}

/** The repeated KeyValue field `field` of a message, as a record. */
function decodeKeyValues(bytes: Uint8Array, field: number): Attrs {
  const out: Attrs = {};
  readFields(bytes, "KeyValueList", (no, wt, r) => {
    if (no !== field || !isLen(wt)) return false;
    const [k, v] = decodeKeyValue(r.bytes());
    out[k] = v;
    return true;
  });
  return out;
}

function decodeEvent(bytes: Uint8Array): OtlpEvent {
  const event: OtlpEvent = { name: "", timeUnixNano: 0n, attributes: {} };
  readFields(bytes, "Span.Event", (no, wt, r) => {
    if (no === 1 && wt === WireType.Bit64) event.timeUnixNano = toBigInt(r.fixed64());
    else if (no === 2 && isLen(wt)) event.name = r.string();
    else if (no === 3 && isLen(wt)) {
      const [k, v] = decodeKeyValue(r.bytes());
      event.attributes[k] = v;
    } else return false;
    return true;
  });
  return event;
}

function decodeLink(bytes: Uint8Array): OtlpLink {
  const link: OtlpLink = { traceId: "", spanId: "", attributes: {} };
  readFields(bytes, "Span.Link", (no, wt, r) => {
    if (no === 1 && isLen(wt)) link.traceId = hex(r.bytes());
    else if (no === 2 && isLen(wt)) link.spanId = hex(r.bytes());
    else if (no === 4 && isLen(wt)) {
      const [k, v] = decodeKeyValue(r.bytes());
      link.attributes[k] = v;
    } else return false;
    return true;
  });
  return link;
}

function decodeSpan(bytes: Uint8Array, resource: Attrs, scope: string): OtlpSpan {
  const span: OtlpSpan = {
    traceId: "",
    spanId: "",
    parentSpanId: "",
    name: "",
    kind: 0,
    startUnixNano: 0n,
    endUnixNano: 0n,
    attributes: {},
    events: [],
    links: [],
    status: { code: 0, message: "" },
    resource,
    scope,
  };
  readFields(bytes, "Span", (no, wt, r) => {
    if (no === 1 && isLen(wt)) span.traceId = hex(r.bytes());
    else if (no === 2 && isLen(wt)) span.spanId = hex(r.bytes());
    else if (no === 4 && isLen(wt)) span.parentSpanId = hex(r.bytes());
    else if (no === 5 && isLen(wt)) span.name = r.string();
    else if (no === 6 && wt === WireType.Varint) span.kind = r.int32();
    else if (no === 7 && wt === WireType.Bit64) span.startUnixNano = toBigInt(r.fixed64());
    else if (no === 8 && wt === WireType.Bit64) span.endUnixNano = toBigInt(r.fixed64());
    else if (no === 9 && isLen(wt)) {
      const [k, v] = decodeKeyValue(r.bytes());
      span.attributes[k] = v;
    } else if (no === 11 && isLen(wt)) span.events.push(decodeEvent(r.bytes()));
    else if (no === 13 && isLen(wt)) span.links.push(decodeLink(r.bytes()));
    else if (no === 15 && isLen(wt)) {
      readFields(r.bytes(), "Status", (n, w, rr) => {
        if (n === 2 && isLen(w)) span.status.message = rr.string();
        else if (n === 3 && w === WireType.Varint) span.status.code = rr.int32();
        else return false;
        return true;
      });
    } else return false;
    return true;
  });
  return span;
}

/** Every span of an ExportTraceServiceRequest body, with its resource attributes. */
export function decodeExportTraceRequest(body: Uint8Array): OtlpSpan[] {
  const spans: OtlpSpan[] = [];
  readFields(body, "ExportTraceServiceRequest", (no, wt, r) => {
    if (no !== 1 || !isLen(wt)) return false;
    // ResourceSpans: the resource may follow the scope spans on the wire, so collect first.
    let resource: Attrs = {};
    const scopeSpans: Uint8Array[] = [];
    readFields(r.bytes(), "ResourceSpans", (n, w, rr) => {
      if (n === 1 && isLen(w)) resource = decodeKeyValues(rr.bytes(), 1);
      else if (n === 2 && isLen(w)) scopeSpans.push(rr.bytes());
      else return false;
      return true;
    });
    for (const ss of scopeSpans) {
      let scope = "";
      const raw: Uint8Array[] = [];
      readFields(ss, "ScopeSpans", (n, w, rr) => {
        if (n === 1 && isLen(w)) {
          readFields(rr.bytes(), "InstrumentationScope", (n2, w2, r2) => {
            if (n2 !== 1 || !isLen(w2)) return false;
            scope = r2.string();
            return true;
          });
        } else if (n === 2 && isLen(w)) raw.push(rr.bytes());
        else return false;
        return true;
      });
      for (const s of raw) spans.push(decodeSpan(s, resource, scope));
    }
    return true;
  });
  return spans;
}
