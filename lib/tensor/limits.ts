/**
 * The largest single tensor a backend can hold, and what the WebGPU device was created with.
 * WebGPU binds each tensor as one storage buffer, so no tensor may exceed the device's
 * `maxStorageBufferBindingSize` (128 MiB by default; tfjs-backend-webgpu requests the adapter's own
 * limit when it creates the device). Layers that would make a larger tensor -- attention scores,
 * the GEGLU projection -- compute it in slices under `tensorByteLimit()` (diffusers' attention
 * slicing and feed-forward chunking).
 */
import * as tf from "@tensorflow/tfjs-core";

let limit = Number.POSITIVE_INFINITY;

/** Bytes the largest tensor a layer makes may have (Infinity: no slicing). */
export function tensorByteLimit(): number {
  return limit;
}

/** Sets the limit (null: none). initBackend("webgpu") sets it from the device. */
export function setTensorByteLimit(bytes: number | null): void {
  if (bytes !== null && !(bytes > 0)) throw new Error(`tensor byte limit must be > 0, got ${bytes}`);
  limit = bytes ?? Number.POSITIVE_INFINITY;
}

/** What the bench prints about the adapter and device. */
export interface DeviceReport {
  backend: string;
  vendor: string;
  architecture: string;
  description: string;
  /** A software adapter (llvmpipe/lavapipe, SwiftShader): never a timing to report as GPU. */
  isFallbackAdapter: boolean;
  maxStorageBufferBindingSize: number | null;
  maxBufferSize: number | null;
  tensorByteLimit: number;
}

interface GpuAdapterLike {
  info?: { vendor?: string; architecture?: string; description?: string; isFallbackAdapter?: boolean };
  isFallbackAdapter?: boolean;
}

/** Describes the current tfjs backend; for webgpu, the adapter and the device's limits. */
export async function describeDevice(): Promise<DeviceReport> {
  const backend = tf.getBackend();
  const report: DeviceReport = {
    backend,
    vendor: "",
    architecture: "",
    description: backend === "webgpu" ? "" : `tfjs ${backend} backend (CPU)`,
    isFallbackAdapter: backend !== "webgpu",
    maxStorageBufferBindingSize: null,
    maxBufferSize: null,
    tensorByteLimit: limit,
  };
  if (backend !== "webgpu") return report;
  const device = (tf.backend() as unknown as { device?: { limits: Record<string, number> } }).device;
  report.maxStorageBufferBindingSize = device?.limits.maxStorageBufferBindingSize ?? null;
  report.maxBufferSize = device?.limits.maxBufferSize ?? null;
  const gpu =
    (navigator as unknown as { gpu?: { requestAdapter(o?: unknown): Promise<GpuAdapterLike | null> } })
      .gpu;
  const adapter = await gpu?.requestAdapter({ powerPreference: "high-performance" });
  const info = adapter?.info ?? {};
  report.vendor = info.vendor ?? "";
  report.architecture = info.architecture ?? "";
  report.description = info.description ?? "";
  report.isFallbackAdapter = Boolean(info.isFallbackAdapter ?? adapter?.isFallbackAdapter ?? false);
  return report;
}

/** After initBackend("webgpu"): the device's binding limit becomes the tensor limit. */
export function applyWebGpuDeviceLimit(): void {
  const device = (tf.backend() as unknown as { device?: { limits: Record<string, number> } }).device;
  const binding = device?.limits.maxStorageBufferBindingSize;
  if (binding) setTensorByteLimit(Math.min(binding, device!.limits.maxBufferSize ?? binding));
}
