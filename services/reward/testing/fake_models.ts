/**
 * Tiny stand-ins for the real reward exports, with the same input/output names, element types and
 * ranks (REWARDS.md suggested layouts), and simple closed-form outputs a test can recompute:
 *
 * - ImageReward `vision.onnx`: pixel_values [B,3,S,S] -> image_embeds [B,tokens,D] =
 *   reshape(channel_means(pixel_values) @ visionWeight [3, tokens*D]).
 * - ImageReward `text_head.onnx`: (input_ids int64 [B,L], attention_mask int64 [B,L],
 *   image_embeds [B,tokens,D]) -> reward [B,1] =
 *   (sum_l mask[l] * table[ids[l]] + mean_tokens(image_embeds)) @ headWeight [D,1].
 * - HPSv2 `image.onnx`: pixel_values -> image_embeds [B,D] = channel_means @ imageWeight [3,D].
 * - HPSv2 `text.onnx`: input_ids int64 [B,L] -> text_embeds [B,D] = (ids / idScale) @ textWeight [L,D]
 *   (not causal: the pad id changes the output, so a test sees the padding).
 */

import { OnnxGraphBuilder } from "./onnx_builder.ts";

/** Mean of each channel of one CHW image. */
export function channelMeans(chw: ArrayLike<number>): [number, number, number] {
  const plane = chw.length / 3;
  const m: number[] = [];
  for (let c = 0; c < 3; c++) {
    let s = 0;
    for (let i = 0; i < plane; i++) s += chw[c * plane + i];
    m.push(s / plane);
  }
  return m as [number, number, number];
}

export interface FakeImageRewardSpec {
  size: number;
  tokens: number;
  dim: number;
  seqLen: number;
  /** [3, tokens*dim] row-major. */
  visionWeight: Float32Array;
  /** [vocab, dim] row-major. */
  table: Float32Array;
  /** [dim]. */
  headWeight: Float32Array;
}

export function buildFakeImageRewardVision(s: FakeImageRewardSpec): Uint8Array {
  const g = new OnnxGraphBuilder("fake_blip_vision");
  g.input("pixel_values", "float32", ["batch_size", 3, s.size, s.size]);
  g.initializer("w", "float32", [3, s.tokens * s.dim], s.visionWeight);
  g.initializer("shape", "int64", [3], BigInt64Array.of(-1n, BigInt(s.tokens), BigInt(s.dim)));
  g.node("ReduceMean", ["pixel_values"], ["m"], { axes: { ints: [2, 3] }, keepdims: { i: 0 } });
  g.node("MatMul", ["m", "w"], ["flat"]);
  g.node("Reshape", ["flat", "shape"], ["image_embeds"]);
  g.output("image_embeds", "float32", ["batch_size", s.tokens, s.dim]);
  return g.build();
}

export function buildFakeImageRewardTextHead(s: FakeImageRewardSpec): Uint8Array {
  const vocab = s.table.length / s.dim;
  const g = new OnnxGraphBuilder("fake_blip_text_head");
  g.input("input_ids", "int64", ["batch_size", s.seqLen]);
  g.input("attention_mask", "int64", ["batch_size", s.seqLen]);
  g.input("image_embeds", "float32", ["batch_size", s.tokens, s.dim]);
  g.initializer("table", "float32", [vocab, s.dim], s.table);
  g.initializer("head", "float32", [s.dim, 1], s.headWeight);
  g.initializer("axis1", "int64", [1], BigInt64Array.of(1n));
  g.initializer("axis2", "int64", [1], BigInt64Array.of(2n));
  g.node("Gather", ["table", "input_ids"], ["emb"], { axis: { i: 0 } });
  g.node("Cast", ["attention_mask"], ["maskf"], { to: { i: 1 } });
  g.node("Unsqueeze", ["maskf", "axis2"], ["mask3"]);
  g.node("Mul", ["emb", "mask3"], ["masked"]);
  g.node("ReduceSum", ["masked", "axis1"], ["text"], { keepdims: { i: 0 } });
  g.node("ReduceMean", ["image_embeds"], ["img"], { axes: { ints: [1] }, keepdims: { i: 0 } });
  g.node("Add", ["text", "img"], ["h"]);
  g.node("MatMul", ["h", "head"], ["reward"]);
  g.output("reward", "float32", ["batch_size", 1]);
  return g.build();
}

/** The raw reward the fake pair gives for one image's pixel values and its tokens. */
export function fakeImageRewardRaw(
  s: FakeImageRewardSpec,
  chw: ArrayLike<number>,
  ids: number[],
  mask: number[],
): number {
  const m = channelMeans(chw);
  const h = new Float64Array(s.dim);
  for (let l = 0; l < ids.length; l++) {
    for (let d = 0; d < s.dim; d++) h[d] += mask[l] * s.table[ids[l] * s.dim + d];
  }
  for (let d = 0; d < s.dim; d++) {
    let acc = 0;
    for (let t = 0; t < s.tokens; t++) {
      let e = 0;
      for (let c = 0; c < 3; c++) e += m[c] * s.visionWeight[c * s.tokens * s.dim + t * s.dim + d];
      acc += e;
    }
    h[d] += acc / s.tokens;
  }
  let r = 0;
  for (let d = 0; d < s.dim; d++) r += h[d] * s.headWeight[d];
  return r;
}

export interface FakeHpsv2Spec {
  size: number;
  dim: number;
  seqLen: number;
  idScale: number;
  /** [3, dim]. */
  imageWeight: Float32Array;
  /** [seqLen, dim]. */
  textWeight: Float32Array;
}

export function buildFakeHpsv2Image(s: FakeHpsv2Spec): Uint8Array {
  const g = new OnnxGraphBuilder("fake_open_clip_image");
  g.input("pixel_values", "float32", ["batch_size", 3, s.size, s.size]);
  g.initializer("w", "float32", [3, s.dim], s.imageWeight);
  g.node("ReduceMean", ["pixel_values"], ["m"], { axes: { ints: [2, 3] }, keepdims: { i: 0 } });
  g.node("MatMul", ["m", "w"], ["image_embeds"]);
  g.output("image_embeds", "float32", ["batch_size", s.dim]);
  return g.build();
}

export function buildFakeHpsv2Text(s: FakeHpsv2Spec): Uint8Array {
  const g = new OnnxGraphBuilder("fake_open_clip_text");
  g.input("input_ids", "int64", ["batch_size", s.seqLen]);
  g.initializer("scale", "float32", [], Float32Array.of(s.idScale));
  g.initializer("w", "float32", [s.seqLen, s.dim], s.textWeight);
  g.node("Cast", ["input_ids"], ["idsf"], { to: { i: 1 } });
  g.node("Div", ["idsf", "scale"], ["scaled"]);
  g.node("MatMul", ["scaled", "w"], ["text_embeds"]);
  g.output("text_embeds", "float32", ["batch_size", s.dim]);
  return g.build();
}

export function fakeHpsv2Embeddings(
  s: FakeHpsv2Spec,
  chw: ArrayLike<number>,
  ids: number[],
): { image: Float64Array; text: Float64Array } {
  const m = channelMeans(chw);
  const image = new Float64Array(s.dim);
  const text = new Float64Array(s.dim);
  for (let d = 0; d < s.dim; d++) {
    for (let c = 0; c < 3; c++) image[d] += m[c] * s.imageWeight[c * s.dim + d];
    for (let l = 0; l < ids.length; l++) text[d] += (ids[l] / s.idScale) * s.textWeight[l * s.dim + d];
  }
  return { image, text };
}

/** Deterministic pseudo-random weights in [-1, 1). */
export function seededWeights(n: number, seed: number): Float32Array {
  let x = seed >>> 0 || 1;
  return Float32Array.from({ length: n }, () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return (x / 2 ** 32) * 2 - 1;
  });
}

/** A synthetic RGB image with structure in every channel. */
export function patternImage(
  width: number,
  height: number,
  seed = 1,
): { width: number; height: number; data: Uint8Array } {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      data[i] = (x * 3 + y * seed) & 255;
      data[i + 1] = ((x ^ y) * (seed + 2)) & 255;
      data[i + 2] = (128 + 100 * Math.sin((x + y * seed) / 17)) & 255;
    }
  }
  return { width, height, data };
}
