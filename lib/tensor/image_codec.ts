/** proto `rdpo.v1.Image` <-> HWC uint8 bytes, with validation (errors name the field path). */
import { create } from "@bufbuild/protobuf";
import { type Image, ImageSchema } from "../../gen/rdpo/v1/tensor_pb.ts";
import { InvalidArgumentError, ResourceExhaustedError } from "../errors.ts";
import { DEFAULT_MAX_IMAGE_SIDE } from "./tensor_codec.ts";

export interface ImageOptions {
  /** Accepted channel counts (default [3]: RGB, as tensor.proto says). */
  channels?: readonly number[];
  /** Largest width or height (default DEFAULT_MAX_IMAGE_SIDE). */
  maxSide?: number;
}

export interface DecodedImage {
  width: number;
  height: number;
  channels: number;
  /** HWC uint8, a view on the message bytes. */
  data: Uint8Array;
}

/** Validates a proto Image: sides > 0 and <= maxSide, allowed channels, byte count = W*H*C. */
export function decodeImage(
  field: string,
  image: Image | undefined,
  options: ImageOptions = {},
): DecodedImage {
  if (!image) throw new InvalidArgumentError(field, "missing");
  const maxSide = options.maxSide ?? DEFAULT_MAX_IMAGE_SIDE;
  const allowed = options.channels ?? [3];
  for (const side of ["width", "height"] as const) {
    const v = image[side];
    if (v <= 0) throw new InvalidArgumentError(`${field}.${side}`, `must be > 0, got ${v}`);
    if (v > maxSide) {
      throw new ResourceExhaustedError(`${field}.${side}: ${v} exceeds the maximum side ${maxSide}`);
    }
  }
  if (!allowed.includes(image.channels)) {
    throw new InvalidArgumentError(
      `${field}.channels`,
      `expected ${allowed.join(" or ")}, got ${image.channels}`,
    );
  }
  const expected = image.width * image.height * image.channels;
  if (image.data.byteLength !== expected) {
    throw new InvalidArgumentError(
      `${field}.data`,
      `${image.data.byteLength} bytes, expected ${expected} (${image.width} x ${image.height} x ${image.channels})`,
    );
  }
  return { width: image.width, height: image.height, channels: image.channels, data: image.data };
}

/** Decodes a list of images, naming each by index ("images[3].width"). */
export function decodeImages(
  field: string,
  images: readonly Image[],
  options: ImageOptions = {},
): DecodedImage[] {
  return images.map((image, i) => decodeImage(`${field}[${i}]`, image, options));
}

/** A proto Image over `data` (no copy); throws if the byte count does not match. */
export function encodeImage(width: number, height: number, channels: number, data: Uint8Array): Image {
  if (data.byteLength !== width * height * channels) {
    throw new Error(`encodeImage: ${data.byteLength} bytes for ${width} x ${height} x ${channels}`);
  }
  return create(ImageSchema, { width, height, channels, data });
}
