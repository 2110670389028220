/** The policy role's current adapter (none for the reference role): lookup, replacement, backup. */
import { FailedPreconditionError, ResourceExhaustedError } from "../../lib/errors.ts";
import type { TensorRecord } from "../../lib/tensor/safetensors.ts";
import type { AdamState } from "./adam.ts";
import { type AdapterSlot, attachAdapter } from "./adapter_slot.ts";
import { DEFAULT_MAX_LORA_RANK, type LoraSettings, type PolicyCoreOptions, type Role } from "./core_types.ts";
import type { PolicyPipeline } from "./pipeline.ts";

/** A copy of the adapter taken before a load, put back if the load fails. */
export interface AdapterBackup {
  settings: LoraSettings;
  weights: Map<string, TensorRecord>;
  state: AdamState;
}

export class AdapterHolder {
  slot: AdapterSlot | null = null;

  constructor(
    readonly unet: PolicyPipeline["unet"],
    readonly options: Pick<PolicyCoreOptions, "lora" | "maxLoraRank">,
  ) {}

  require(what: string): AdapterSlot {
    if (!this.slot) {
      throw new FailedPreconditionError(
        `${what} needs the policy role (this process serves the frozen reference)`,
      );
    }
    return this.slot;
  }

  useLora(role: Role): boolean {
    if (role === "policy" && !this.slot) {
      throw new FailedPreconditionError(
        "role POLICY requested, but this process serves the reference (no adapter)",
      );
    }
    return role === "policy";
  }

  async snapshot(): Promise<AdapterBackup | null> {
    const slot = this.slot;
    if (!slot) return null;
    return {
      settings: {
        rank: slot.lora.rank,
        alpha: slot.lora.alpha,
        targetModules: [...slot.lora.targetModules],
        seed: 0,
      } satisfies LoraSettings,
      weights: await slot.lora.toPeftTensorsAsync(),
      state: await slot.optimizer.exportState(),
    };
  }

  restore(backup: AdapterBackup): void {
    this.replace(backup.settings);
    const slot = this.slot!;
    slot.lora.loadPeftTensors(backup.weights);
    slot.optimizer.importState(backup.state);
  }

  replace(settings: LoraSettings): void {
    const maxRank = this.options.maxLoraRank ?? DEFAULT_MAX_LORA_RANK;
    if (!Number.isInteger(settings.rank) || settings.rank < 1 || settings.rank > maxRank) {
      throw new ResourceExhaustedError(
        `adapter.rank: ${settings.rank} is outside [1, ${maxRank}] (--max-lora-rank): the adapter's ` +
          "size and every UNet pass grow with it",
      );
    }
    const old = this.slot;
    if (old) {
      old.optimizer.dispose();
      old.lora.dispose();
      this.slot = null;
    }
    try {
      this.slot = attachAdapter(this.unet, settings);
    } catch (e) {
      // Keep serving: fall back to a fresh adapter with the configured settings.
      this.slot = attachAdapter(this.unet, this.options.lora);
      throw e;
    }
  }

  dispose(): void {
    this.slot?.optimizer.dispose();
    this.slot?.lora.dispose();
    this.slot = null;
  }
}
