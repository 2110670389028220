/**
 * The PyTorch eager baseline of the GPU check (bench/gpu/torch_unet.py prints it as JSON): reading
 * it, the ratio column of the sd15 table, and its own small table.
 */
import type { Sd15Row } from "./bench.ts";

export interface TorchRun {
  parameters?: number;
  unet_forward?: number;
  lora_step?: number;
  lora?: string;
  peak_memory_bytes?: number;
}

export interface TorchTimings {
  torch?: string;
  diffusers?: string;
  device?: string;
  fp32?: TorchRun;
  bf16?: TorchRun;
  error?: string;
}

export async function readTorchTimings(path: string): Promise<TorchTimings> {
  try {
    const text = (await Deno.readTextFile(path)).trim().split("\n").filter((l) => l.startsWith("{")).pop();
    return text ? JSON.parse(text) as TorchTimings : { error: `${path}: no JSON line` };
  } catch (e) {
    return { error: `${path}: ${(e as Error).message}` };
  }
}

/**
 * ours / PyTorch fp32 per row: the UNet forward directly; the RDPO step against the work it does
 * (two guided reference forwards without grad + two guided policy forward-backward passes).
 */
export function torchRatios(rows: Sd15Row[], t: TorchTimings): Map<string, number> {
  const out = new Map<string, number>();
  const fwd = t.fp32?.unet_forward;
  const step = t.fp32?.lora_step;
  for (const r of rows) {
    if (r.what.startsWith("UNet forward") && fwd) out.set(r.what, r.ms / fwd);
    if (r.what.startsWith("RDPO LoRA train step") && fwd && step) {
      out.set(r.what, r.ms / (2 * fwd + 2 * step));
    }
  }
  return out;
}

export function formatTorchTimings(t: TorchTimings): string {
  if (t.error || !t.fp32) return `PyTorch eager baseline: not measured (${t.error ?? "no fp32 result"})`;
  const row = (name: string, r?: TorchRun) =>
    r
      ? `| ${name} | ${r.unet_forward?.toFixed(1) ?? "-"} | ${r.lora_step?.toFixed(1) ?? "-"} | ${
        r.peak_memory_bytes ? (r.peak_memory_bytes / 2 ** 30).toFixed(2) : "-"
      } | ${r.lora ?? ""} |`
      : `| ${name} | - | - | - | not run |`;
  return [
    `PyTorch eager baseline: torch ${t.torch}, diffusers ${t.diffusers} UNet2DConditionModel, ${t.device}, same SD1.5 config, 4 x 4 x 64 x 64:`,
    "",
    "| dtype | UNet forward + CFG (ms) | LoRA fwd+bwd+AdamW, checkpointed (ms) | peak GiB | LoRA |",
    "| --- | ---: | ---: | ---: | --- |",
    row("fp32", t.fp32),
    row("bf16", t.bf16),
  ].join("\n");
}
