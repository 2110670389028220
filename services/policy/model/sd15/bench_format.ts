/** The sd15 bench result (bench.ts) as Markdown: the model and adapter lines, then one table. */
import type { Sd15BenchResult } from "./bench.ts";

const gib = (n: number) => `${(n / 2 ** 30).toFixed(2)} GiB`;

/** The adapter line: a software (fallback) adapter or a CPU backend is said to be one. */
export function describeAdapter(r: Sd15BenchResult): string {
  const d = r.device;
  if (d.backend !== "webgpu") {
    return `backend ${d.backend}: ${d.description} (no WebGPU adapter: CPU fallback)`;
  }
  return `backend webgpu: ${d.vendor || "?"} / ${d.architecture || "?"} (${
    d.description || "no description"
  }), ` +
    `fallback adapter: ${d.isFallbackAdapter ? "yes (software rasterizer: not GPU timings)" : "no"}, ` +
    `maxStorageBufferBindingSize ${d.maxStorageBufferBindingSize}, maxBufferSize ${d.maxBufferSize}`;
}

/** The result as one Markdown table (the model and adapter lines above it). */
export function formatSd15Bench(r: Sd15BenchResult, ratios?: Map<string, number>): string {
  const reps = r.rows[0]?.reps ?? 0;
  const lines = [
    `Model ${r.model}: SD1.5 layout, ${(r.parameters / 1e6).toFixed(1)} M parameters (${r.widths}), ` +
    `${r.latent}x${r.latent} latents, ${r.pairs} pairs; weights ready in ${r.loadSeconds.toFixed(1)} s`,
    "",
    describeAdapter(r),
    "",
    reps
      ? `Times: the first call (shader compilation and weight upload included) and the median of ${reps} more.`
      : "Times: the first call only (shader compilation and weight upload included).",
    "",
    ratios
      ? "| what | first call ms | ms | x PyTorch eager fp32 | note |"
      : "| what | first call ms | ms | note |",
    ratios ? "| --- | ---: | ---: | ---: | --- |" : "| --- | ---: | ---: | --- |",
  ];
  const dash = ratios ? "- | - | - | " : "- | - | ";
  for (const row of r.rows) {
    const ratio = ratios?.get(row.what);
    const ms = row.reps ? row.ms.toFixed(1) : "-";
    lines.push(
      ratios
        ? `| ${row.what} | ${row.firstMs.toFixed(1)} | ${ms} | ${
          ratio ? ratio.toFixed(2) : "-"
        } | ${row.note} |`
        : `| ${row.what} | ${row.firstMs.toFixed(1)} | ${ms} | ${row.note} |`,
    );
  }
  const est = r.estimate.find((e) => e.pass.startsWith("LoRA"));
  const lp = r.logProbs.map((v) => v.toFixed(1)).join(", ");
  lines.push(
    `| train step loss, adapter moved | ${dash}loss per step ${
      r.losses.map((l) => l.toPrecision(7)).join(", ")
    }; max \\|delta\\| of the LoRA weights ${r.adapterMaxDelta.toExponential(2)}, checksum ${
      r.adapterChanged ? "changed" : "UNCHANGED"
    } |`,
    `| candidate log-probs | ${dash}${lp || "none"} |`,
    `| peak memory, measured | ${dash}${r.measuredPeakBytes ? gib(r.measuredPeakBytes) : "n/a"} (tfjs: ${
      r.device.backend === "webgpu" ? "GPU buffers allocated, pool included" : "tensor bytes"
    }) |`,
    `| peak memory, from the shapes | ${dash}${
      est
        ? `${gib(est.peakBytes)} train step; largest tensor ${(est.largest.bytes / 2 ** 20).toFixed(1)} MiB ${
          JSON.stringify(est.largest.shape)
        }`
        : "n/a"
    } |`,
  );
  return lines.join("\n");
}
