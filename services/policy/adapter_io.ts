/** The adapter in and out: read in PEFT layout, load (tensors, file or reset), save under the adapter root. */
import { dirname } from "node:path";
import { InvalidArgumentError, NotFoundError } from "../../lib/errors.ts";
import { resolveInsideRoot } from "../../lib/fs/safe_path.ts";
import type { TensorRecord } from "../../lib/tensor/safetensors.ts";
import { readSafetensors } from "../../lib/tensor/safetensors.ts";
import type { AdamState } from "./adam.ts";
import type { AdapterHolder } from "./adapter_holder.ts";
import { fromPeftRecord, rankOf, toPeftRecord } from "./adapter_slot.ts";
import { checksumTensors } from "./checksum.ts";
import type { AdapterData, LoadAdapterInput, PolicyCoreOptions } from "./core_types.ts";
import { parseLoraMetadata } from "./model/lora.ts";
import type { TrainAccounting } from "./train_accounting.ts";

export async function readAdapter(
  adapters: AdapterHolder,
  includeOptimizerState: boolean,
): Promise<AdapterData> {
  const slot = adapters.require("GetAdapter");
  const weights = await slot.lora.toPeftTensorsAsync();
  let optimizerState: Map<string, TensorRecord> | null = null;
  if (includeOptimizerState) {
    optimizerState = new Map();
    const st = await slot.optimizer.exportState();
    for (const [k, mv] of st.moments) {
      optimizerState.set(`${k}.exp_avg`, toPeftRecord(k, mv.m, slot));
      optimizerState.set(`${k}.exp_avg_sq`, toPeftRecord(k, mv.v, slot));
    }
  }
  return {
    weights,
    rank: slot.lora.rank,
    alpha: slot.lora.alpha,
    targetModules: [...slot.lora.targetModules],
    optimizerState,
    optimizerStep: slot.optimizer.step,
    checksum: await checksumTensors(weights),
  };
}

export async function loadAdapter(
  adapters: AdapterHolder,
  accounting: TrainAccounting,
  options: Pick<PolicyCoreOptions, "adapterRoot" | "lora">,
  input: LoadAdapterInput,
): Promise<{ checksum: string; optimizerStep: number }> {
  adapters.require("LoadAdapter");
  if (input.reset) {
    adapters.replace({ ...options.lora, seed: input.seed ?? options.lora.seed });
  } else if (input.path !== undefined) {
    const path = await resolveInsideRoot(options.adapterRoot, input.path, "path", {
      mustExist: true,
      missing: "invalid_argument",
    });
    const { tensors, metadata } = await readSafetensors(path).catch((e) => {
      throw new InvalidArgumentError("path", `cannot read adapter file: ${(e as Error).message}`);
    });
    const meta = parseLoraMetadata(metadata, "unet.", "path");
    const rank = meta.rank ?? rankOf(tensors, "path");
    adapters.replace({
      rank,
      alpha: meta.alpha ?? rank,
      targetModules: meta.targetModules ?? options.lora.targetModules,
      seed: 0,
    });
    adapters.slot!.lora.loadPeftTensors(tensors);
  } else if (input.adapter) {
    const a = input.adapter;
    const rank = a.rank || rankOf(a.weights, "adapter.weights");
    const targets = a.targetModules.length ? a.targetModules : options.lora.targetModules;
    adapters.replace({ rank, alpha: a.alpha || rank, targetModules: targets, seed: 0 });
    const slot = adapters.slot!;
    slot.lora.loadPeftTensors(a.weights);
    if (a.optimizerState.size) {
      const moments: AdamState["moments"] = new Map();
      for (const [k, v] of slot.varByPeft) {
        const get = (suffix: string) => {
          const rec = a.optimizerState.get(`${k}.${suffix}`);
          if (!rec) throw new InvalidArgumentError("adapter.optimizer_state", `missing "${k}.${suffix}"`);
          const data = fromPeftRecord(k, rec, slot, `adapter.optimizer_state.${k}.${suffix}`);
          if (data.length !== v.size) {
            throw new InvalidArgumentError("adapter.optimizer_state", `bad size for "${k}"`);
          }
          return data;
        };
        moments.set(k, { m: get("exp_avg"), v: get("exp_avg_sq") });
      }
      slot.optimizer.importState({ step: a.optimizerStep, moments });
    } else if (a.optimizerStep) {
      slot.optimizer.importState({
        step: a.optimizerStep,
        moments: (await slot.optimizer.exportState()).moments,
      });
    }
  } else {
    throw new InvalidArgumentError("source", "set adapter, path, or reset");
  }
  accounting.last = null;
  const slot = adapters.slot!;
  return {
    checksum: await checksumTensors(await slot.lora.toPeftTensorsAsync()),
    optimizerStep: slot.optimizer.step,
  };
}

export async function saveAdapter(
  adapters: AdapterHolder,
  adapterRoot: string,
  path: string,
): Promise<{ path: string; bytes: number; checksum: string }> {
  const slot = adapters.require("SaveAdapter");
  const dest = await resolveInsideRoot(adapterRoot, path, "path");
  if (!dest.endsWith(".safetensors")) throw new InvalidArgumentError("path", "must end with .safetensors");
  await Deno.mkdir(dirname(dest), { recursive: true });
  const bytes = await slot.lora.save(dest).catch((e) => {
    throw new NotFoundError(`path: cannot write ${path}: ${(e as Error).message}`);
  });
  return { path: dest, bytes, checksum: await checksumTensors(await slot.lora.toPeftTensorsAsync()) };
}
