/**
 * tfjs backend selection, shared by every service. `wasm` is the default; `webgpu` uses Deno's
 * `navigator.gpu` (Mesa's lavapipe on machines without a GPU); `cpu` is the pure-JS reference;
 * `tensorflow` (@tensorflow/tfjs-node-gpu) is imported only when selected, because installing it
 * downloads libtensorflow and so it is never a default dependency.
 */
import "./quiet.ts";
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export type BackendName = "wasm" | "webgpu" | "cpu" | "tensorflow";
export const BACKENDS: readonly BackendName[] = ["wasm", "webgpu", "cpu", "tensorflow"];

export function parseBackendName(value: string): BackendName {
  if ((BACKENDS as readonly string[]).includes(value)) return value as BackendName;
  throw new Error(`backend: unknown backend "${value}" (allowed: ${BACKENDS.join(", ")})`);
}

/** Folder holding the tfjs wasm binaries inside node_modules. */
function wasmDir(): string {
  const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
  return join(root, "node_modules", "@tensorflow", "tfjs-backend-wasm", "dist") + "/";
}

const registered = new Set<BackendName>();

async function register(name: BackendName): Promise<void> {
  if (registered.has(name)) return;
  switch (name) {
    case "cpu": {
      // tfjs-backend-cpu's ResizeNearestNeighborGrad is wrong for batch > 1 (wasm_kernels.ts).
      const { registerCpuKernelFixes } = await import("./wasm_kernels.ts");
      await registerCpuKernelFixes();
      break;
    }
    case "wasm": {
      const wasm = await import("@tensorflow/tfjs-backend-wasm");
      wasm.setWasmPaths(`file://${wasmDir()}`);
      // Conv2DBackpropFilter (absent from tfjs-backend-wasm) and faster matmul/backprop kernels.
      const { registerWasmKernels } = await import("./wasm_kernels.ts");
      await registerWasmKernels();
      (await import("./wasm_segment_kernels.ts")).registerWasmSegmentKernels();
      break;
    }
    case "webgpu": {
      const gpu = (navigator as unknown as { gpu?: { requestAdapter(): Promise<unknown> } }).gpu;
      if (!gpu || !(await gpu.requestAdapter())) {
        throw new Error(
          "backend webgpu: no WebGPU adapter (navigator.gpu.requestAdapter() returned null); on a machine without a GPU install Mesa's lavapipe: apt-get install mesa-vulkan-drivers",
        );
      }
      await import("@tensorflow/tfjs-backend-webgpu");
      break;
    }
    case "tensorflow": {
      // Not a dependency of the project: the deployment that selects it installs it.
      const spec = "npm:@tensorflow/tfjs-node-gpu@4.22.0";
      try {
        await import(spec);
      } catch (e) {
        throw new Error(
          `backend tensorflow: could not import ${spec} (${
            (e as Error).message
          }); install it where its libtensorflow download can run`,
        );
      }
      break;
    }
  }
  registered.add(name);
}

/**
 * Selects and initialises a backend; throws with a clear message when it is unavailable. With
 * `gradients`, also registers tfjs' gradient functions (gradients.ts), which training needs.
 */
export async function initBackend(name: BackendName, options: { gradients?: boolean } = {}): Promise<string> {
  await register(name);
  if (options.gradients) {
    const { enableGradients } = await import("./gradients.ts");
    await enableGradients();
  }
  const backendKey = name === "tensorflow" ? "tensorflow" : name;
  const ok = await tf.setBackend(backendKey);
  if (!ok) throw new Error(`backend ${name}: tfjs could not initialise it`);
  await tf.ready();
  if (name === "webgpu") (await import("./limits.ts")).applyWebGpuDeviceLimit();
  return tf.getBackend();
}

/** Whether a WebGPU adapter exists here (tests for webgpu skip otherwise). */
export async function hasWebGpuAdapter(): Promise<boolean> {
  const gpu = (navigator as unknown as { gpu?: { requestAdapter(): Promise<unknown> } }).gpu;
  if (!gpu) return false;
  try {
    return (await gpu.requestAdapter()) !== null;
  } catch {
    return false;
  }
}
