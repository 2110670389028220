/**
 * proto `rdpo.v1.Tensor` / `rdpo.v1.Image` (proto/rdpo/v1/tensor.proto) <-> typed arrays and tfjs
 * tensors, with validation. Every problem is an InvalidArgumentError naming the field path the
 * caller passes in (e.g. "latents" -> "latents.shape: ..."); too many elements is a
 * ResourceExhaustedError.
 *
 * Zero copy where possible: decoding float32/int32/int64/float64 data returns a typed-array VIEW on
 * the message's bytes when their offset is aligned to the element size (the result then shares
 * memory with the message), and copies otherwise. Encoding wraps the typed array's memory as the
 * `data` bytes without copying.
 *
 * This module is the one import for all of it: tensor_codec.ts (Tensor <-> typed arrays),
 * image_codec.ts (Image <-> bytes), tf_codec.ts (both <-> tfjs) and float16.ts.
 */
export * from "./tensor_codec.ts";
export * from "./image_codec.ts";
export * from "./tf_codec.ts";
export { floatToHalf } from "./float16.ts";
