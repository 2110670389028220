/** The run's adapter between a checkpoint and the policy service (GetAdapter's tensors, LoadAdapter). */
import type { AdapterState } from "../../gen/rdpo/v1/policy_pb.ts";
import type { NamedTensor } from "../../gen/rdpo/v1/tensor_pb.ts";
import { FailedPreconditionError } from "../../lib/errors.ts";
import { decodeFloat32, encodeTensor } from "../../lib/tensor/codec.ts";
import type { TensorRecord } from "../../lib/tensor/safetensors.ts";
import type { LoadedCheckpoint } from "./checkpoint.ts";
import type { RunConfig } from "./config.ts";
import type { TrainerServices } from "./services.ts";

export function fromNamed(list: NamedTensor[], field: string): Map<string, TensorRecord> {
  const out = new Map<string, TensorRecord>();
  list.forEach((nt, i) => {
    const d = decodeFloat32(`${field}[${i}]`, nt.tensor);
    out.set(nt.name, { dtype: "F32", shape: d.shape, data: d.data.slice() });
  });
  return out;
}

function toNamed(
  map: ReadonlyMap<string, TensorRecord>,
): { name: string; tensor: ReturnType<typeof encodeTensor> }[] {
  return [...map].map(([name, t]) => ({ name, tensor: encodeTensor(t.data as Float32Array, t.shape) }));
}

/** Puts the policy's adapter where a checkpoint (or a fresh start) says it is. */
export async function restoreAdapter(
  services: TrainerServices,
  config: RunConfig,
  ckpt: LoadedCheckpoint | null,
): Promise<string> {
  if (!ckpt) {
    const fresh = await services.call(
      "load_adapter",
      (o) => services.policy.loadAdapter({ reset: true, seed: BigInt(config.seed) }, o),
    );
    return fresh.checksum;
  }
  const r = await services.call("load_adapter", (o) =>
    services.policy.loadAdapter({
      source: {
        case: "adapter",
        value: {
          weights: toNamed(ckpt.adapter.weights),
          rank: ckpt.adapter.rank,
          alpha: ckpt.adapter.alpha,
          targetModules: ckpt.adapter.targetModules,
          optimizerState: ckpt.optimizer ? toNamed(ckpt.optimizer.state) : [],
          optimizerStep: BigInt(ckpt.optimizer?.step ?? 0),
        } as unknown as AdapterState,
      },
    }, o));
  if (r.checksum !== ckpt.adapter.checksum) {
    throw new FailedPreconditionError(
      `checkpoint ${ckpt.name}: the policy holds adapter ${r.checksum} after loading, the checkpoint recorded ${ckpt.adapter.checksum}`,
    );
  }
  return r.checksum;
}
