/**
 * An object's async methods served from a Deno Worker, so that long synchronous work (a tfjs UNet
 * pass blocks its thread for seconds) never stalls the main thread's event loop: gRPC health checks
 * and small RPCs keep being answered while the model runs (Kubernetes liveness probes kill pods that
 * do not answer).
 *
 * Main thread: `RemoteObject.start(url, init)` starts the worker, sends `init` and waits for "ready";
 * `call(method, ...args)` posts one message and resolves with the reply. Worker: `serveObject(make)`
 * builds the object from `init` and answers calls in arrival order.
 *
 * Data crosses by structured clone. Arguments' typed arrays that own their whole buffer are
 * transferred to the worker instead of copied (a view into a larger buffer, e.g. a slice of a gRPC
 * message or Node's Buffer pool, is copied, since transferring would detach memory other code still
 * reads). Replies are always copied: the served object may return arrays it keeps (a cache of prompt
 * embeddings, say), and transferring those would detach them under the object's feet (found by the
 * fuzzer: EncodePrompts after an earlier EncodePrompts read a detached cached embedding). Errors keep their gRPC
 * meaning: a lib/errors.ts ServiceError comes back as one with the same code, message and field.
 * The caller's trace context travels with each call (W3C propagation), so spans made in the worker
 * stay children of the RPC's server span.
 */
import { context, propagation, ROOT_CONTEXT } from "@opentelemetry/api";
import { ServiceError } from "../errors.ts";

type Code = ServiceError["code"];

/** A ServiceError thrown in the worker, re-thrown on the main thread with the same code. */
export class RemoteServiceError extends ServiceError {
  constructor(readonly code: Code, message: string, readonly field?: string, name = "RemoteServiceError") {
    super(message);
    this.name = name;
  }
}

interface CallMessage {
  id: number;
  method: string;
  args: unknown[];
  trace: Record<string, string>;
}

type ReplyMessage =
  | { id: number; ok: true; value: unknown }
  | {
    id: number;
    ok: false;
    error: { name: string; message: string; code?: Code; field?: string; stack?: string };
  };

/** ArrayBuffers that typed arrays in `value` own whole (safe to transfer), found by a bounded walk. */
export function transferables(value: unknown, out = new Set<ArrayBuffer>(), depth = 0): ArrayBuffer[] {
  if (depth > 8 || value === null || typeof value !== "object") return [...out];
  if (ArrayBuffer.isView(value)) {
    const b = value.buffer;
    if (
      b instanceof ArrayBuffer && value.byteOffset === 0 && value.byteLength === b.byteLength &&
      b.byteLength > 0
    ) {
      out.add(b);
    }
    return [...out];
  }
  const items = value instanceof Map
    ? [...value.values()]
    : Array.isArray(value)
    ? value
    : Object.values(value);
  for (const v of items) transferables(v, out, depth + 1);
  return [...out];
}

function serializeError(e: unknown): Extract<ReplyMessage, { ok: false }>["error"] {
  if (e instanceof ServiceError) {
    return { name: e.name, message: e.message, code: e.code, field: (e as { field?: string }).field };
  }
  const err = e instanceof Error ? e : new Error(String(e));
  return { name: err.name, message: err.message, stack: err.stack };
}

function deserializeError(e: Extract<ReplyMessage, { ok: false }>["error"]): Error {
  if (e.code) return new RemoteServiceError(e.code, e.message, e.field, e.name);
  const err = new Error(e.message);
  err.name = e.name;
  if (e.stack) err.stack = `${e.stack}\n    (in the worker)`;
  return err;
}

/** The main thread's handle on an object living in a worker. */
export class RemoteObject {
  #worker: Worker;
  #next = 1;
  #pending = new Map<number, { resolve(v: unknown): void; reject(e: unknown): void }>();
  #dead: Error | null = null;

  private constructor(worker: Worker) {
    this.#worker = worker;
    worker.onmessage = (ev: MessageEvent<ReplyMessage>) => {
      const r = ev.data;
      const p = this.#pending.get(r.id);
      if (!p) return;
      this.#pending.delete(r.id);
      if (r.ok) p.resolve(r.value);
      else p.reject(deserializeError(r.error));
    };
    worker.onerror = (ev: ErrorEvent) => {
      ev.preventDefault();
      this.#fail(new Error(`worker crashed: ${ev.message}`));
    };
  }

  /** Starts the worker module at `url` and waits until it built its object from `init`. */
  static async start(url: URL, init: unknown, name = "remote"): Promise<RemoteObject> {
    const remote = new RemoteObject(new Worker(url, { type: "module", name }));
    await remote.call("__init__", init);
    return remote;
  }

  #fail(e: Error): void {
    this.#dead = e;
    for (const p of this.#pending.values()) p.reject(e);
    this.#pending.clear();
  }

  /** Calls `method` on the worker's object; arguments' whole-buffer typed arrays are transferred. */
  call<T = unknown>(method: string, ...args: unknown[]): Promise<T> {
    if (this.#dead) return Promise.reject(this.#dead);
    const id = this.#next++;
    const trace: Record<string, string> = {};
    propagation.inject(context.active(), trace);
    return new Promise<T>((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      const message: CallMessage = { id, method, args, trace };
      try {
        this.#worker.postMessage(message, transferables(args));
      } catch (e) {
        this.#pending.delete(id);
        reject(e);
      }
    });
  }

  terminate(): void {
    this.#fail(new Error("worker terminated"));
    this.#worker.terminate();
  }
}

/**
 * Worker side: `make(init)` builds the object; each call runs `object[method](...args)` under the
 * caller's trace context. Calls are answered as they complete (the object serializes what must be).
 */
export function serveObject(make: (init: unknown) => Promise<Record<string, unknown>>): void {
  // deno-lint-ignore no-explicit-any
  const scope = self as any;
  let object: Record<string, unknown> | null = null;
  // Copied, never transferred: see the file comment.
  const reply = (m: ReplyMessage) => scope.postMessage(m);
  scope.onmessage = async (ev: MessageEvent<CallMessage>) => {
    const { id, method, args, trace } = ev.data;
    try {
      let value: unknown;
      if (method === "__init__") {
        object = await make(args[0]);
      } else {
        const fn = object?.[method];
        if (typeof fn !== "function") throw new Error(`no method ${method}`);
        const parent = propagation.extract(ROOT_CONTEXT, trace);
        value = await context.with(parent, () => (fn as (...a: unknown[]) => unknown).apply(object, args));
      }
      reply({ id, ok: true, value });
    } catch (e) {
      reply({ id, ok: false, error: serializeError(e) });
    }
  };
}
