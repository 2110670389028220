/**
 * proto `rdpo.v1.Tensor` / `rdpo.v1.Image` <-> tfjs tensors, on top of the validating decoders of
 * tensor_codec.ts and image_codec.ts (tfjs copies the data into its backend).
 */
import * as tf from "@tensorflow/tfjs-core";
import { DataType, type Image, type Tensor } from "../../gen/rdpo/v1/tensor_pb.ts";
import { InvalidArgumentError } from "../errors.ts";
import { decodeImage, encodeImage, type ImageOptions } from "./image_codec.ts";
import { type DecodeOptions, decodeTensor, encodeTensor } from "./tensor_codec.ts";

/**
 * A proto Tensor as a tfjs tensor (float dtypes -> float32, INT32/UINT8 -> int32, INT64 -> int32 if
 * every value fits, BOOL -> bool). tfjs copies the data into its backend.
 */
export function decodeTfTensor(
  field: string,
  tensor: Tensor | undefined,
  options: DecodeOptions = {},
): tf.Tensor {
  const t = decodeTensor(field, tensor, options);
  switch (t.dtype) {
    case DataType.FLOAT32:
    case DataType.FLOAT16:
    case DataType.FLOAT64:
      return tf.tensor(
        t.data instanceof Float32Array ? t.data : Float32Array.from(t.data as Float64Array),
        t.shape,
        "float32",
      );
    case DataType.INT32:
      return tf.tensor(t.data as Int32Array, t.shape, "int32");
    case DataType.UINT8:
      return tf.tensor(Int32Array.from(t.data as Uint8Array), t.shape, "int32");
    case DataType.BOOL:
      return tf.tensor(t.data as Uint8Array, t.shape, "bool");
    case DataType.INT64: {
      const src = t.data as BigInt64Array;
      const out = new Int32Array(src.length);
      for (let i = 0; i < src.length; i++) {
        const v = src[i];
        if (v > 2147483647n || v < -2147483648n) {
          throw new InvalidArgumentError(
            `${field}.data`,
            `element ${i} (${v}) does not fit int32 (tfjs has no int64)`,
          );
        }
        out[i] = Number(v);
      }
      return tf.tensor(out, t.shape, "int32");
    }
    default:
      throw new InvalidArgumentError(`${field}.dtype`, `unknown dtype ${t.dtype}`);
  }
}

/** A tfjs tensor as a proto Tensor (float32 -> FLOAT32, int32 -> INT32, bool -> BOOL). */
export async function encodeTfTensor(tensor: tf.Tensor): Promise<Tensor> {
  const values = await tensor.data();
  switch (tensor.dtype) {
    case "float32":
      return encodeTensor(values as Float32Array, tensor.shape);
    case "int32":
      return encodeTensor(values as Int32Array, tensor.shape);
    case "bool":
      return encodeTensor(values as Uint8Array, tensor.shape, DataType.BOOL);
    default:
      throw new Error(`encodeTfTensor: dtype ${tensor.dtype} has no proto DataType`);
  }
}

/** A validated proto Image as an int32 tfjs tensor [H, W, C] with values 0..255. */
export function decodeTfImage(
  field: string,
  image: Image | undefined,
  options: ImageOptions = {},
): tf.Tensor3D {
  const im = decodeImage(field, image, options);
  return tf.tensor3d(Int32Array.from(im.data), [im.height, im.width, im.channels], "int32");
}

/**
 * A [H, W, C] tfjs tensor with values in 0..255 as a proto Image (values are rounded and clamped
 * to 0..255, as an 8-bit image is).
 */
export async function encodeTfImage(tensor: tf.Tensor3D): Promise<Image> {
  const [height, width, channels] = tensor.shape;
  const values = await tensor.data();
  const data = new Uint8Array(values.length);
  for (let i = 0; i < values.length; i++) data[i] = Math.min(255, Math.max(0, Math.round(Number(values[i]))));
  return encodeImage(width, height, channels, data);
}
