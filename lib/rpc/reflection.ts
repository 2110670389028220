/**
 * gRPC server reflection, both `grpc.reflection.v1` and `grpc.reflection.v1alpha` (grpcurl asks v1
 * first, Python's grpcio-reflection only v1alpha: INFRA.md, "gRPC on Deno"), answered from the
 * protobuf-es file descriptors of the served services: each generated file carries its
 * FileDescriptorProto, so there is no second copy of the schema.
 */
import type { DescExtension, DescFile, DescMessage, DescService } from "@bufbuild/protobuf";
import { toBinary } from "@bufbuild/protobuf";
import { type DescriptorProto, FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import * as v1 from "../../gen/grpc/reflection/v1/reflection_pb.ts";
import * as v1alpha from "../../gen/grpc/reflection/v1alpha/reflection_pb.ts";
import { Code } from "./status.ts";
import type { CallContext, ImplOf } from "./types.ts";

/** The part of a reflection request both protocol versions share. */
type ReflectionRequest = v1.ServerReflectionRequest | v1alpha.ServerReflectionRequest;

/** A `message_response` as an init object (valid for both versions: they differ only in names). */
type ResponseInit =
  | { case: "fileDescriptorResponse"; value: { fileDescriptorProto: Uint8Array[] } }
  | { case: "allExtensionNumbersResponse"; value: { baseTypeName: string; extensionNumber: number[] } }
  | { case: "listServicesResponse"; value: { service: { name: string }[] } }
  | { case: "errorResponse"; value: { errorCode: number; errorMessage: string } };

const encodedFiles = new WeakMap<DescFile, Uint8Array>();

function encodeFile(file: DescFile): Uint8Array {
  let bytes = encodedFiles.get(file);
  if (!bytes) {
    bytes = toBinary(FileDescriptorProtoSchema, file.proto);
    encodedFiles.set(file, bytes);
  }
  return bytes;
}

/** Symbols and files reachable from a set of services (their files and transitive imports). */
export class DescriptorIndex {
  readonly files = new Map<string, DescFile>();
  readonly symbols = new Map<string, DescFile>();
  readonly extensions: DescExtension[] = [];
  readonly serviceNames: string[];

  constructor(services: readonly DescService[]) {
    this.serviceNames = services.map((s) => s.typeName);
    for (const service of services) this.#addFile(service.file);
  }

  #addFile(file: DescFile): void {
    if (this.files.has(file.proto.name)) return;
    this.files.set(file.proto.name, file);
    for (const dep of file.dependencies) this.#addFile(dep);
    // Symbols come from the FileDescriptorProto, not protobuf-es' descriptors, so synthetic
    // messages (map entries such as ListScorersResponse.AliasesEntry) are found too.
    const proto = file.proto;
    const prefix = proto.package ? `${proto.package}.` : "";
    for (const service of proto.service) {
      this.symbols.set(prefix + service.name, file);
      for (const method of service.method) this.symbols.set(`${prefix}${service.name}.${method.name}`, file);
    }
    for (const e of proto.enumType) this.symbols.set(prefix + e.name, file);
    for (const ext of proto.extension) this.symbols.set(prefix + ext.name, file);
    for (const message of proto.messageType) this.#addMessage(prefix + message.name, message, file);
    for (const ext of file.extensions) this.extensions.push(ext);
    const nestedExtensions = (m: DescMessage): void => {
      this.extensions.push(...m.nestedExtensions);
      m.nestedMessages.forEach(nestedExtensions);
    };
    file.messages.forEach(nestedExtensions);
  }

  #addMessage(name: string, message: DescriptorProto, file: DescFile): void {
    this.symbols.set(name, file);
    for (const field of message.field) this.symbols.set(`${name}.${field.name}`, file);
    for (const oneof of message.oneofDecl) this.symbols.set(`${name}.${oneof.name}`, file);
    for (const e of message.enumType) this.symbols.set(`${name}.${e.name}`, file);
    for (const ext of message.extension) this.symbols.set(`${name}.${ext.name}`, file);
    for (const nested of message.nestedType) this.#addMessage(`${name}.${nested.name}`, nested, file);
  }

  /** The file and its transitive dependencies, the file first, each once, encoded. */
  encodedWithDependencies(file: DescFile): Uint8Array[] {
    const seen = new Set<string>();
    const out: Uint8Array[] = [];
    const visit = (f: DescFile) => {
      if (seen.has(f.proto.name)) return;
      seen.add(f.proto.name);
      out.push(encodeFile(f));
      for (const dep of f.dependencies) visit(dep);
    };
    visit(file);
    return out;
  }

  /** The reply to one reflection request. */
  answer(request: ReflectionRequest["messageRequest"]): ResponseInit {
    const notFound = (message: string): ResponseInit => ({
      case: "errorResponse",
      value: { errorCode: Code.NOT_FOUND, errorMessage: message },
    });
    switch (request.case) {
      case "listServices":
        return {
          case: "listServicesResponse",
          value: { service: this.serviceNames.map((name) => ({ name })) },
        };
      case "fileByFilename": {
        const file = this.files.get(request.value);
        if (!file) return notFound(`file_by_filename: unknown file "${request.value}"`);
        return {
          case: "fileDescriptorResponse",
          value: { fileDescriptorProto: this.encodedWithDependencies(file) },
        };
      }
      case "fileContainingSymbol": {
        const symbol = request.value.replace(/^\./, "");
        const file = this.symbols.get(symbol);
        if (!file) return notFound(`file_containing_symbol: unknown symbol "${request.value}"`);
        return {
          case: "fileDescriptorResponse",
          value: { fileDescriptorProto: this.encodedWithDependencies(file) },
        };
      }
      case "fileContainingExtension": {
        const { containingType, extensionNumber } = request.value;
        const ext = this.extensions.find((e) =>
          e.extendee.typeName === containingType && e.number === extensionNumber
        );
        if (!ext) {
          return notFound(
            `file_containing_extension: no extension ${extensionNumber} of "${containingType}"`,
          );
        }
        return {
          case: "fileDescriptorResponse",
          value: { fileDescriptorProto: this.encodedWithDependencies(ext.file) },
        };
      }
      case "allExtensionNumbersOfType": {
        const type = request.value;
        if (!this.symbols.has(type)) return notFound(`all_extension_numbers_of_type: unknown type "${type}"`);
        const numbers = this.extensions.filter((e) => e.extendee.typeName === type).map((e) => e.number);
        return {
          case: "allExtensionNumbersResponse",
          value: { baseTypeName: type, extensionNumber: numbers },
        };
      }
      default:
        return {
          case: "errorResponse",
          value: { errorCode: Code.INVALID_ARGUMENT, errorMessage: "message_request: not set" },
        };
    }
  }
}

/** Ends the iteration when `signal` aborts (reflection streams must not hold up a drain). */
async function* until<T>(source: AsyncIterable<T>, signal: AbortSignal): AsyncGenerator<T> {
  const iterator = source[Symbol.asyncIterator]();
  let onAbort: () => void = () => {};
  const aborted = new Promise<IteratorResult<T>>((resolve) => {
    onAbort = () => resolve({ done: true, value: undefined });
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
  });
  try {
    while (true) {
      const next = await Promise.race([iterator.next(), aborted]);
      if (next.done) return;
      yield next.value;
    }
  } finally {
    signal.removeEventListener("abort", onAbort);
    void iterator.return?.();
  }
}

/** Something to register services on (RpcServer; kept structural to avoid an import cycle). */
interface ServiceRegistry {
  addService(service: typeof v1.ServerReflection, impl: ImplOf<typeof v1.ServerReflection>): unknown;
  addService(
    service: typeof v1alpha.ServerReflection,
    impl: ImplOf<typeof v1alpha.ServerReflection>,
  ): unknown;
}

/**
 * Registers both reflection services. `services` is read on every stream, so services added after
 * this call (and the reflection services themselves) are listed.
 */
export function addReflection(server: ServiceRegistry, services: () => readonly DescService[]): void {
  let cached: { count: number; index: DescriptorIndex } | undefined;
  const index = () => {
    const list = services();
    if (!cached || cached.count !== list.length) {
      cached = { count: list.length, index: new DescriptorIndex(list) };
    }
    return cached.index;
  };
  async function* serve<R extends ReflectionRequest>(requests: AsyncIterable<R>, ctx: CallContext) {
    for await (const request of until(requests, ctx.serverClosing)) {
      yield {
        validHost: request.host,
        originalRequest: request,
        messageResponse: index().answer(request.messageRequest),
      };
    }
  }
  server.addService(v1.ServerReflection, {
    serverReflectionInfo: (requests, ctx) => serve(requests, ctx),
  });
  server.addService(v1alpha.ServerReflection, {
    serverReflectionInfo: (requests, ctx) => serve(requests, ctx),
  });
}
