/**
 * Memory of full-size SD1.5 passes from their shapes (the shape backend): the largest tensor and
 * the peak of live tensor bytes of a forward, a guided forward and an RDPO LoRA train step.
 */
import * as tf from "@tensorflow/tfjs-core";
import { type Allocation, useShapeBackend } from "../../../../lib/tensor/shape_backend.ts";
import { setTensorByteLimit, tensorByteLimit } from "../../../../lib/tensor/limits.ts";
import { enableGradients } from "../../../../lib/tensor/gradients.ts";
import { parseUNetConfig } from "../config.ts";
import { UNet2DConditionModel } from "../unet.ts";
import { LoraAdapter } from "../lora.ts";
import type { ParamStore } from "../params.ts";

/** Gives every parameter a value (zeros) one at a time; on the shape backend nothing is kept. */
export function zeroParams(store: ParamStore): void {
  for (const p of store.params()) p.setFromTorch(new Float32Array(p.size));
}

export interface MemoryRow {
  pass: string;
  /** Peak of live tensor bytes during the pass, weights included. */
  peakBytes: number;
  largest: Allocation;
}

export interface MemoryEstimateOptions {
  unetConfig: Record<string, unknown>;
  latent: number;
  /** Preference pairs of the train step (each side runs the UNet with CFG: 2 x pairs samples). */
  pairs: number;
  contextLength: number;
  tensorLimitBytes: number | null;
  loraRank?: number;
  /** Run the train step with UNet-block gradient checkpointing too. */
  checkpointing?: boolean[];
}

/**
 * Runs, on the shape backend: the weights upload, a guided forward (2 x pairs samples, no tape) and
 * the RDPO train step's UNet work (winner and loser guided forwards under one gradient tape plus the
 * reference forwards without it), and reports each pass's peak and largest tensor.
 */
export async function estimateUNetMemory(o: MemoryEstimateOptions): Promise<MemoryRow[]> {
  const previousBackend = tf.getBackend();
  const previousLimit = tensorByteLimit();
  const backend = await useShapeBackend();
  await enableGradients();
  setTensorByteLimit(o.tensorLimitBytes);
  const cfg = parseUNetConfig(o.unetConfig);
  const unet = new UNet2DConditionModel(cfg);
  const rows: MemoryRow[] = [];
  try {
    backend.resetPeak();
    zeroParams(unet.params);
    const lora = LoraAdapter.attach(unet, { rank: o.loraRank ?? 4 });
    rows.push({
      pass: "weights (UNet + LoRA)",
      peakBytes: backend.peakBytes,
      largest: { ...backend.largest },
    });
    const b = 2 * o.pairs;
    const x = tf.zeros([b, cfg.inChannels, o.latent, o.latent]) as tf.Tensor4D;
    const ctx = tf.zeros([b, o.contextLength, cfg.crossAttentionDim[0]]) as tf.Tensor3D;
    const ts = new Array(b).fill(999);
    backend.resetPeak();
    tf.tidy(() => unet.forward(x, ts, ctx, { lora: true }));
    rows.push({
      pass: `guided forward (${b} samples)`,
      peakBytes: backend.peakBytes,
      largest: { ...backend.largest },
    });
    for (const checkpoint of o.checkpointing ?? [false]) {
      backend.resetPeak();
      tf.tidy(() => {
        const refW = unet.forward(x, ts, ctx, { lora: false });
        const refL = unet.forward(x, ts, ctx, { lora: false });
        const { value, grads } = tf.variableGrads(() => {
          const w = unet.forward(x, ts, ctx, { lora: true, checkpoint });
          const l = unet.forward(x, ts, ctx, { lora: true, checkpoint });
          return tf.add(
            tf.mean(tf.square(tf.sub(w, refW))),
            tf.mean(tf.square(tf.sub(l, refL))),
          ) as tf.Scalar;
        }, lora.variables());
        return [value, ...Object.values(grads)];
      });
      rows.push({
        pass: `LoRA train step (${o.pairs} pairs, CFG${checkpoint ? ", checkpointed blocks" : ""})`,
        peakBytes: backend.peakBytes,
        largest: { ...backend.largest },
      });
    }
    x.dispose();
    ctx.dispose();
    lora.dispose();
  } finally {
    unet.dispose();
    tf.disposeVariables();
    setTensorByteLimit(Number.isFinite(previousLimit) ? previousLimit : null);
    if (previousBackend && previousBackend !== tf.getBackend()) await tf.setBackend(previousBackend);
  }
  return rows;
}

/** Markdown table of the rows. */
export function formatMemoryRows(rows: MemoryRow[]): string {
  const gib = (n: number) => (n / 2 ** 30).toFixed(2);
  const lines = [
    "| pass | peak live tensors (GiB) | largest tensor | MiB |",
    "| --- | ---: | --- | ---: |",
    ...rows.map((r) =>
      `| ${r.pass} | ${gib(r.peakBytes)} | ${r.largest.kernel} ${JSON.stringify(r.largest.shape)} | ${
        (r.largest.bytes / 2 ** 20).toFixed(0)
      } |`
    ),
  ];
  return lines.join("\n");
}
