/**
 * Strict wire-type check of an encoded protobuf message against its descriptor.
 *
 * protobuf-es' decoder reads a known field with the reader its declared type needs, whatever wire
 * type the tag says, so some malformed bodies decode "successfully" into garbage (a `string` field
 * sent as varint 0 reads as ""). A request body whose tags disagree with the schema is a client bug
 * and must be INVALID_ARGUMENT, so the adapter runs this before `fromBinary`. It walks tags only:
 * length-delimited payloads (bytes, strings) are skipped without being read or copied.
 */
import type { DescField, DescMessage } from "@bufbuild/protobuf";
import { ScalarType } from "@bufbuild/protobuf";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";

const MAX_DEPTH = 100;

const fieldsByNumber = new WeakMap<DescMessage, Map<number, DescField>>();

function fieldByNumber(desc: DescMessage, no: number): DescField | undefined {
  let map = fieldsByNumber.get(desc);
  if (!map) {
    map = new Map(desc.fields.map((f) => [f.number, f]));
    fieldsByNumber.set(desc, map);
  }
  return map.get(no);
}

function scalarWireType(scalar: ScalarType): WireType {
  switch (scalar) {
    case ScalarType.DOUBLE:
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
      return WireType.Bit64;
    case ScalarType.FLOAT:
    case ScalarType.FIXED32:
    case ScalarType.SFIXED32:
      return WireType.Bit32;
    case ScalarType.STRING:
    case ScalarType.BYTES:
      return WireType.LengthDelimited;
    default:
      return WireType.Varint;
  }
}

function wireName(w: number): string {
  return WireType[w] ?? `wire type ${w}`;
}

/** Wire types a field accepts, and the message to descend into for length-delimited data. */
function accepted(field: DescField): { types: WireType[]; nested?: DescMessage; mapEntry?: DescField } {
  switch (field.fieldKind) {
    case "scalar":
      return { types: [scalarWireType(field.scalar)] };
    case "enum":
      return { types: [WireType.Varint] };
    case "message":
      return field.delimitedEncoding
        ? { types: [WireType.StartGroup], nested: field.message }
        : { types: [WireType.LengthDelimited], nested: field.message };
    case "list": {
      if (field.listKind === "message") {
        return field.delimitedEncoding
          ? { types: [WireType.StartGroup], nested: field.message }
          : { types: [WireType.LengthDelimited], nested: field.message };
      }
      const element = field.listKind === "enum" ? WireType.Varint : scalarWireType(field.scalar);
      // Repeated numbers may come packed (length-delimited) or one per tag, whatever the declaration.
      return element === WireType.LengthDelimited
        ? { types: [element] }
        : { types: [element, WireType.LengthDelimited] };
    }
    case "map":
      return { types: [WireType.LengthDelimited], mapEntry: field };
  }
}

function mapValueWireType(field: DescField & { fieldKind: "map" }): WireType {
  if (field.mapKind === "scalar") return scalarWireType(field.scalar);
  if (field.mapKind === "enum") return WireType.Varint;
  return WireType.LengthDelimited;
}

/**
 * Returns undefined when every tag of `bytes` (recursively) fits `desc`, else a problem naming the
 * field path, e.g. `rdpo.v1.ScoreRequest.images[0].width: sent as LengthDelimited, expected Varint`.
 * Malformed framing (truncated varints, lengths past the end) is reported too.
 */
export function wireTypeProblem(desc: DescMessage, bytes: Uint8Array): string | undefined {
  try {
    return checkMessage(desc, new BinaryReader(bytes), bytes.byteLength, desc.typeName, 0);
  } catch (e) {
    return `${desc.typeName}: ${e instanceof Error ? e.message : String(e)}`;
  }
}

function checkMessage(
  desc: DescMessage,
  reader: BinaryReader,
  length: number,
  path: string,
  depth: number,
): string | undefined {
  if (depth > MAX_DEPTH) return `${path}: nested deeper than ${MAX_DEPTH}`;
  const end = reader.pos + length;
  if (end > reader.len) return `${path}: length ${length} runs past the end of the data`;
  const counts = new Map<number, number>();
  while (reader.pos < end) {
    const [fieldNo, wireType] = reader.tag();
    const field = fieldByNumber(desc, fieldNo);
    if (field === undefined) {
      reader.skip(wireType, fieldNo, MAX_DEPTH - depth); // unknown fields are allowed (forward compat)
      continue;
    }
    const index = counts.get(fieldNo) ?? 0;
    counts.set(fieldNo, index + 1);
    const fieldPath = field.fieldKind === "list" || field.fieldKind === "map"
      ? `${path}.${field.name}[${index}]`
      : `${path}.${field.name}`;
    const want = accepted(field);
    if (!want.types.includes(wireType)) {
      return `${fieldPath}: sent as ${wireName(wireType)}, expected ${want.types.map(wireName).join(" or ")}`;
    }
    if (wireType === WireType.LengthDelimited && (want.nested || want.mapEntry)) {
      const len = reader.uint32();
      if (want.nested) {
        const problem = checkMessage(want.nested, reader, len, fieldPath, depth + 1);
        if (problem) return problem;
      } else {
        const problem = checkMapEntry(
          want.mapEntry as DescField & { fieldKind: "map" },
          reader,
          len,
          fieldPath,
        );
        if (problem) return problem;
      }
    } else {
      reader.skip(wireType, fieldNo, MAX_DEPTH - depth);
    }
  }
  if (reader.pos !== end) return `${path}: a field runs past the end of its message`;
  return undefined;
}

function checkMapEntry(
  field: DescField & { fieldKind: "map" },
  reader: BinaryReader,
  length: number,
  path: string,
): string | undefined {
  const end = reader.pos + length;
  if (end > reader.len) return `${path}: length ${length} runs past the end of the data`;
  while (reader.pos < end) {
    const [no, wireType] = reader.tag();
    const want = no === 1 ? scalarWireType(field.mapKey) : no === 2 ? mapValueWireType(field) : undefined;
    if (want !== undefined && wireType !== want) {
      return `${path}.${no === 1 ? "key" : "value"}: sent as ${wireName(wireType)}, expected ${
        wireName(want)
      }`;
    }
    if (no === 2 && field.mapKind === "message") {
      const problem = checkMessage(field.message, reader, reader.uint32(), `${path}.value`, 1);
      if (problem) return problem;
    } else {
      reader.skip(wireType, no);
    }
  }
  if (reader.pos !== end) return `${path}: a field runs past the end of its map entry`;
  return undefined;
}
