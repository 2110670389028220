/**
 * Test-only reader of the golden DDIM fixture (`fixtures/golden/ddim`, layout in the fixtures'
 * README): diffusers' scheduler config, the tolerance, the inference timesteps and the step cases.
 * Every value comes from the files; only the documented layout is assumed.
 */
import { SafetensorsFile } from "../tensor/safetensors.ts";

export interface GoldenDdimConfig {
  /** The diffusers scheduler config object. */
  config: Record<string, unknown>;
  /** Max abs error allowed for scheduler outputs. */
  tolerance: number;
  /** notes.num_inference_steps when given. */
  numInferenceSteps?: number;
}

/** README: "<= 1e-5 absolute for the scheduler" when config.json gives no number. */
const README_SCHEDULER_TOLERANCE = 1e-5;

function parseTolerance(value: unknown): number {
  if (typeof value === "number" && value > 0) return value;
  if (typeof value === "string") {
    const m = /scheduler:\s*<=\s*([0-9.]+(?:e[+-]?[0-9]+)?)/i.exec(value);
    if (m) return Number(m[1]);
  }
  if (typeof value === "object" && value !== null) {
    const s = (value as Record<string, unknown>)["scheduler"];
    if (typeof s === "number") return s;
  }
  return README_SCHEDULER_TOLERANCE;
}

export async function readGoldenDdimConfig(dir: string): Promise<GoldenDdimConfig> {
  const json = JSON.parse(await Deno.readTextFile(`${dir}/config.json`)) as Record<string, unknown>;
  const config = (json["config"] ?? json) as Record<string, unknown>;
  const notes = json["notes"] as Record<string, unknown> | undefined;
  const steps = notes?.["num_inference_steps"];
  return {
    config,
    tolerance: parseTolerance(json["tolerance"]),
    numInferenceSteps: typeof steps === "number" ? steps : undefined,
  };
}

export interface GoldenDdimCase {
  name: string;
  shape: number[];
  modelOutput: Float32Array;
  sample: Float32Array;
  varianceNoise: Float32Array;
  timestep: number;
  eta: number;
  prevSample: Float32Array;
  predOriginalSample: Float32Array;
  stdDevT: number;
}

async function scalar(f: SafetensorsFile, name: string): Promise<number> {
  const t = await f.read(name);
  const v = t.data[0];
  return typeof v === "bigint" ? Number(v) : v;
}

/** The timesteps tensor and every `case<N>.*` group found by listing tensor names. */
export async function readGoldenDdimIo(
  dir: string,
): Promise<{ timesteps: number[]; alphasCumprod: Float32Array; cases: GoldenDdimCase[] }> {
  const f = await SafetensorsFile.open(`${dir}/io.safetensors`);
  try {
    const ts = await f.read("timesteps");
    const timesteps = Array.from(ts.data as ArrayLike<number | bigint>, (v) => Number(v));
    const alphasCumprod = (await f.readFloat32("alphas_cumprod")).data;
    const names = f.names()
      .map((n) => /^(case\d+)\.model_output$/.exec(n)?.[1])
      .filter((n): n is string => n !== undefined)
      .sort((a, b) => Number(a.slice(4)) - Number(b.slice(4)));
    const cases: GoldenDdimCase[] = [];
    for (const name of names) {
      const modelOutput = await f.readFloat32(`${name}.model_output`);
      cases.push({
        name,
        shape: modelOutput.shape,
        modelOutput: modelOutput.data,
        sample: (await f.readFloat32(`${name}.sample`)).data,
        varianceNoise: (await f.readFloat32(`${name}.variance_noise`)).data,
        timestep: await scalar(f, `${name}.timestep`),
        eta: await scalar(f, `${name}.eta`),
        prevSample: (await f.readFloat32(`${name}.prev_sample`)).data,
        predOriginalSample: (await f.readFloat32(`${name}.pred_original_sample`)).data,
        stdDevT: await scalar(f, `${name}.std_dev_t`),
      });
    }
    return { timesteps, alphasCumprod, cases };
  } finally {
    f.close();
  }
}
