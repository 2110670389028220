/**
 * config.json parsing with validation for the three model kinds. Field names and defaults are those
 * of diffusers v0.24 (`UNet2DConditionModel`, `AutoencoderKL`) and transformers (`CLIPTextConfig`);
 * a feature this implementation does not have is rejected by name instead of being ignored.
 * Every error is an InvalidArgumentError naming the field.
 */
import { InvalidArgumentError } from "../../../lib/errors.ts";
import { type ActivationName, parseActivation } from "./nn.ts";

type Json = Record<string, unknown>;

/** Reads a config.json; a fixture-style `{ "config": {...} }` wrapper is unwrapped. */
export async function readConfigJson(path: string): Promise<Json> {
  let raw: unknown;
  try {
    raw = JSON.parse(await Deno.readTextFile(path));
  } catch (e) {
    throw new InvalidArgumentError(path, `cannot read config: ${(e as Error).message}`);
  }
  return unwrapConfig(raw, path);
}

export function unwrapConfig(raw: unknown, where: string): Json {
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    throw new InvalidArgumentError(where, "config must be a JSON object");
  }
  const obj = raw as Json;
  const inner = obj.config;
  if (
    inner && typeof inner === "object" && !Array.isArray(inner) && !("in_channels" in obj) &&
    !("hidden_size" in obj)
  ) {
    return inner as Json;
  }
  return obj;
}

class Reader {
  constructor(readonly cfg: Json, readonly where: string) {}

  field(name: string): string {
    return `${this.where}.${name}`;
  }

  has(name: string): boolean {
    return this.cfg[name] !== undefined && this.cfg[name] !== null;
  }

  int(name: string, def?: number, min = 1): number {
    const v = this.cfg[name] ?? def;
    if (v === undefined) throw new InvalidArgumentError(this.field(name), "required integer is missing");
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v < min) {
      throw new InvalidArgumentError(
        this.field(name),
        `expected an integer >= ${min}, got ${JSON.stringify(v)}`,
      );
    }
    return v;
  }

  num(name: string, def?: number): number {
    const v = this.cfg[name] ?? def;
    if (typeof v !== "number" || !Number.isFinite(v)) {
      throw new InvalidArgumentError(this.field(name), `expected a number, got ${JSON.stringify(v)}`);
    }
    return v;
  }

  bool(name: string, def: boolean): boolean {
    const v = this.cfg[name] ?? def;
    if (typeof v !== "boolean") {
      throw new InvalidArgumentError(this.field(name), `expected a boolean, got ${JSON.stringify(v)}`);
    }
    return v;
  }

  str(name: string, def?: string): string {
    const v = this.cfg[name] ?? def;
    if (typeof v !== "string") {
      throw new InvalidArgumentError(this.field(name), `expected a string, got ${JSON.stringify(v)}`);
    }
    return v;
  }

  strList(name: string, def?: string[]): string[] {
    const v = this.cfg[name] ?? def;
    if (!Array.isArray(v) || v.length === 0 || !v.every((s) => typeof s === "string")) {
      throw new InvalidArgumentError(
        this.field(name),
        `expected a non-empty list of strings, got ${JSON.stringify(v)}`,
      );
    }
    return v as string[];
  }

  intList(name: string, def?: number[]): number[] {
    const v = this.cfg[name] ?? def;
    if (!Array.isArray(v) || v.length === 0 || !v.every((d) => Number.isSafeInteger(d) && d > 0)) {
      throw new InvalidArgumentError(
        this.field(name),
        `expected a non-empty list of positive integers, got ${JSON.stringify(v)}`,
      );
    }
    return v as number[];
  }

  /** An int or a list of `n` ints (diffusers' per-block fields). */
  perBlock(name: string, n: number, def?: number): number[] {
    const v = this.cfg[name] ?? def;
    if (typeof v === "number") return new Array(n).fill(this.int(name, def));
    const list = this.intList(name);
    if (list.length !== n) {
      throw new InvalidArgumentError(
        this.field(name),
        `expected ${n} values (one per block), got ${list.length}`,
      );
    }
    return list;
  }

  /** Fails naming the field unless it is null/absent or equals one of `allowed`. */
  unsupported(name: string, allowed: unknown[] = []): void {
    const v = this.cfg[name];
    if (v === undefined || v === null || allowed.includes(v)) return;
    throw new InvalidArgumentError(
      this.field(name),
      `value ${JSON.stringify(v)} is not supported by this implementation`,
    );
  }

  act(name: string, def?: string): ActivationName {
    const v = this.cfg[name] ?? def;
    try {
      return parseActivation(this.field(name), v);
    } catch (e) {
      throw new InvalidArgumentError(
        this.field(name),
        (e as Error).message.replace(`${this.field(name)}: `, ""),
      );
    }
  }
}

export type UNetDownBlockType = "CrossAttnDownBlock2D" | "DownBlock2D";
export type UNetUpBlockType = "CrossAttnUpBlock2D" | "UpBlock2D";

export interface UNetConfig {
  inChannels: number;
  outChannels: number;
  sampleSize: number | null;
  centerInputSample: boolean;
  flipSinToCos: boolean;
  freqShift: number;
  downBlockTypes: UNetDownBlockType[];
  upBlockTypes: UNetUpBlockType[];
  midBlockType: "UNetMidBlock2DCrossAttn" | null;
  onlyCrossAttention: boolean[];
  blockOutChannels: number[];
  layersPerBlock: number[];
  downsamplePadding: number;
  midBlockScaleFactor: number;
  actFn: ActivationName;
  normNumGroups: number;
  normEps: number;
  crossAttentionDim: number[];
  transformerLayersPerBlock: number[];
  reverseTransformerLayersPerBlock: number[] | null;
  /** Heads per block (diffusers 0.24: `num_attention_heads or attention_head_dim`). */
  numAttentionHeads: number[];
  useLinearProjection: boolean;
  timeEmbeddingDim: number;
  timeEmbeddingActFn: ActivationName | null;
  timestepPostAct: ActivationName | null;
  convInKernel: number;
  convOutKernel: number;
}

/** Parses a diffusers UNet2DConditionModel config. */
export function parseUNetConfig(cfg: Json, where = "unet/config.json"): UNetConfig {
  const r = new Reader(cfg, where);
  const down = r.strList("down_block_types", [
    "CrossAttnDownBlock2D",
    "CrossAttnDownBlock2D",
    "CrossAttnDownBlock2D",
    "DownBlock2D",
  ]);
  const up = r.strList("up_block_types", [
    "UpBlock2D",
    "CrossAttnUpBlock2D",
    "CrossAttnUpBlock2D",
    "CrossAttnUpBlock2D",
  ]);
  for (const [i, t] of down.entries()) {
    if (t !== "CrossAttnDownBlock2D" && t !== "DownBlock2D") {
      throw new InvalidArgumentError(
        `${where}.down_block_types[${i}]`,
        `block type "${t}" is not supported (CrossAttnDownBlock2D, DownBlock2D)`,
      );
    }
  }
  for (const [i, t] of up.entries()) {
    if (t !== "CrossAttnUpBlock2D" && t !== "UpBlock2D") {
      throw new InvalidArgumentError(
        `${where}.up_block_types[${i}]`,
        `block type "${t}" is not supported (CrossAttnUpBlock2D, UpBlock2D)`,
      );
    }
  }
  const n = down.length;
  if (up.length !== n) {
    throw new InvalidArgumentError(
      r.field("up_block_types"),
      `has ${up.length} entries, down_block_types has ${n}`,
    );
  }
  const blockOut = r.intList("block_out_channels", [320, 640, 1280, 1280]);
  if (blockOut.length !== n) {
    throw new InvalidArgumentError(
      r.field("block_out_channels"),
      `has ${blockOut.length} entries, down_block_types has ${n}`,
    );
  }
  const midType = cfg.mid_block_type === undefined ? "UNetMidBlock2DCrossAttn" : cfg.mid_block_type;
  if (midType !== null && midType !== "UNetMidBlock2DCrossAttn") {
    throw new InvalidArgumentError(
      r.field("mid_block_type"),
      `"${midType}" is not supported (UNetMidBlock2DCrossAttn or null)`,
    );
  }
  // diffusers 0.24 (unet_2d_condition.py): "num_attention_heads = num_attention_heads or
  // attention_head_dim" -- the historical attention_head_dim field holds the number of heads.
  const heads = r.has("num_attention_heads")
    ? r.perBlock("num_attention_heads", n)
    : r.perBlock("attention_head_dim", n, 8);
  const onlyCross = cfg.only_cross_attention ?? false;
  let onlyCrossList: boolean[];
  if (typeof onlyCross === "boolean") onlyCrossList = new Array(n).fill(onlyCross);
  else if (
    Array.isArray(onlyCross) && onlyCross.length === n && onlyCross.every((b) => typeof b === "boolean")
  ) {
    onlyCrossList = onlyCross as boolean[];
  } else {
    throw new InvalidArgumentError(r.field("only_cross_attention"), `expected a boolean or ${n} booleans`);
  }
  if (cfg.mid_block_only_cross_attention === true) r.unsupported("mid_block_only_cross_attention", [false]);
  const normGroups = r.int("norm_num_groups", 32);
  for (const [i, c] of blockOut.entries()) {
    if (c % normGroups !== 0) {
      throw new InvalidArgumentError(
        `${where}.block_out_channels[${i}]`,
        `${c} is not divisible by norm_num_groups ${normGroups}`,
      );
    }
    if (c % heads[i] !== 0) {
      throw new InvalidArgumentError(
        `${where}.block_out_channels[${i}]`,
        `${c} is not divisible by ${heads[i]} attention heads`,
      );
    }
  }
  for (
    const name of [
      "class_embed_type",
      "addition_embed_type",
      "encoder_hid_dim",
      "encoder_hid_dim_type",
      "time_cond_proj_dim",
      "num_class_embeds",
      "cross_attention_norm",
      "projection_class_embeddings_input_dim",
      "addition_time_embed_dim",
    ]
  ) {
    r.unsupported(name);
  }
  r.unsupported("dual_cross_attention", [false]);
  r.unsupported("resnet_time_scale_shift", ["default"]);
  r.unsupported("time_embedding_type", ["positional"]);
  r.unsupported("attention_type", ["default"]);
  r.unsupported("class_embeddings_concat", [false]);
  // upcast_attention only matters below float32; this implementation computes in float32.
  const convIn = r.int("conv_in_kernel", 3);
  const convOut = r.int("conv_out_kernel", 3);
  for (const [name, k] of [["conv_in_kernel", convIn], ["conv_out_kernel", convOut]] as const) {
    if (k % 2 !== 1) throw new InvalidArgumentError(r.field(name), `kernel ${k} must be odd`);
  }
  const reverse = cfg.reverse_transformer_layers_per_block;
  return {
    inChannels: r.int("in_channels", 4),
    outChannels: r.int("out_channels", 4),
    sampleSize: r.has("sample_size") ? r.int("sample_size") : null,
    centerInputSample: r.bool("center_input_sample", false),
    flipSinToCos: r.bool("flip_sin_to_cos", true),
    freqShift: r.num("freq_shift", 0),
    downBlockTypes: down as UNetDownBlockType[],
    upBlockTypes: up as UNetUpBlockType[],
    midBlockType: midType,
    onlyCrossAttention: onlyCrossList,
    blockOutChannels: blockOut,
    layersPerBlock: r.perBlock("layers_per_block", n, 2),
    downsamplePadding: r.int("downsample_padding", 1, 0),
    midBlockScaleFactor: r.num("mid_block_scale_factor", 1),
    actFn: r.act("act_fn", "silu"),
    normNumGroups: normGroups,
    normEps: r.num("norm_eps", 1e-5),
    crossAttentionDim: r.perBlock("cross_attention_dim", n, 1280),
    transformerLayersPerBlock: r.perBlock("transformer_layers_per_block", n, 1),
    reverseTransformerLayersPerBlock: reverse === undefined || reverse === null
      ? null
      : r.perBlock("reverse_transformer_layers_per_block", n),
    numAttentionHeads: heads,
    useLinearProjection: r.bool("use_linear_projection", false),
    // resnet_skip_time_act and resnet_out_scale_factor reach only the Simple*/ResnetDownsample
    // block types in diffusers 0.24 (get_down_block / get_up_block), none of which is supported here.
    timeEmbeddingDim: r.has("time_embedding_dim") ? r.int("time_embedding_dim") : blockOut[0] * 4,
    timeEmbeddingActFn: r.has("time_embedding_act_fn") ? r.act("time_embedding_act_fn") : null,
    timestepPostAct: r.has("timestep_post_act") ? r.act("timestep_post_act") : null,
    convInKernel: convIn,
    convOutKernel: convOut,
  };
}

export interface VaeConfig {
  inChannels: number;
  outChannels: number;
  blockOutChannels: number[];
  layersPerBlock: number;
  actFn: ActivationName;
  latentChannels: number;
  normNumGroups: number;
  scalingFactor: number;
  shiftFactor: number | null;
  midBlockAddAttention: boolean;
  useQuantConv: boolean;
  usePostQuantConv: boolean;
}

/** Parses a diffusers AutoencoderKL config. */
export function parseVaeConfig(cfg: Json, where = "vae/config.json"): VaeConfig {
  const r = new Reader(cfg, where);
  const blockOut = r.intList("block_out_channels", [64]);
  const n = blockOut.length;
  const down = r.strList("down_block_types", new Array(n).fill("DownEncoderBlock2D"));
  const up = r.strList("up_block_types", new Array(n).fill("UpDecoderBlock2D"));
  if (down.length !== n || !down.every((t) => t === "DownEncoderBlock2D")) {
    throw new InvalidArgumentError(
      r.field("down_block_types"),
      `expected ${n} x "DownEncoderBlock2D", got ${JSON.stringify(down)}`,
    );
  }
  if (up.length !== n || !up.every((t) => t === "UpDecoderBlock2D")) {
    throw new InvalidArgumentError(
      r.field("up_block_types"),
      `expected ${n} x "UpDecoderBlock2D", got ${JSON.stringify(up)}`,
    );
  }
  const groups = r.int("norm_num_groups", 32);
  for (const [i, c] of blockOut.entries()) {
    if (c % groups !== 0) {
      throw new InvalidArgumentError(
        `${where}.block_out_channels[${i}]`,
        `${c} is not divisible by norm_num_groups ${groups}`,
      );
    }
  }
  r.unsupported("latents_mean");
  r.unsupported("latents_std");
  return {
    inChannels: r.int("in_channels", 3),
    outChannels: r.int("out_channels", 3),
    blockOutChannels: blockOut,
    layersPerBlock: r.int("layers_per_block", 1),
    actFn: r.act("act_fn", "silu"),
    latentChannels: r.int("latent_channels", 4),
    normNumGroups: groups,
    scalingFactor: r.num("scaling_factor", 0.18215),
    shiftFactor: r.has("shift_factor") ? r.num("shift_factor") : null,
    midBlockAddAttention: r.bool("mid_block_add_attention", true),
    useQuantConv: r.bool("use_quant_conv", true),
    usePostQuantConv: r.bool("use_post_quant_conv", true),
  };
}

export interface ClipTextConfig {
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  maxPositionEmbeddings: number;
  hiddenAct: ActivationName;
  layerNormEps: number;
  projectionDim: number | null;
  eosTokenId: number;
  bosTokenId: number | null;
  padTokenId: number | null;
}

/** Parses a transformers CLIPTextConfig (a full CLIPConfig's `text_config` is accepted too). */
export function parseClipTextConfig(cfg: Json, where = "text_encoder/config.json"): ClipTextConfig {
  const inner = cfg.text_config && typeof cfg.text_config === "object" && !("hidden_size" in cfg)
    ? cfg.text_config as Json
    : cfg;
  const r = new Reader(inner, where);
  const hidden = r.int("hidden_size", 512);
  const heads = r.int("num_attention_heads", 8);
  if (hidden % heads !== 0) {
    throw new InvalidArgumentError(
      r.field("hidden_size"),
      `${hidden} is not divisible by num_attention_heads ${heads}`,
    );
  }
  return {
    vocabSize: r.int("vocab_size", 49408),
    hiddenSize: hidden,
    intermediateSize: r.int("intermediate_size", 2048),
    numHiddenLayers: r.int("num_hidden_layers", 12),
    numAttentionHeads: heads,
    maxPositionEmbeddings: r.int("max_position_embeddings", 77),
    hiddenAct: r.act("hidden_act", "quick_gelu"),
    layerNormEps: r.num("layer_norm_eps", 1e-5),
    projectionDim: r.has("projection_dim") ? r.int("projection_dim") : null,
    eosTokenId: r.int("eos_token_id", 2, 0),
    bosTokenId: r.has("bos_token_id") ? r.int("bos_token_id", undefined, 0) : null,
    padTokenId: r.has("pad_token_id") ? r.int("pad_token_id", undefined, 0) : null,
  };
}
