/**
 * The gradient kernels behind wasm_kernels.ts's registrations, as plain tfjs-op functions (see that
 * file's comment for why each exists): conv2d's filter and input gradients on the ops the wasm
 * backend runs fast, and a correct nearest-neighbour resize gradient for the cpu backend.
 */
import * as tf from "@tensorflow/tfjs-core";

/** dW for an NHWC conv2d: x [B, H, W, Cin], dy [B, Ho, Wo, Cout] -> [kh, kw, Cin, Cout]. */
export function conv2dBackpropFilterByTaps(
  x: tf.Tensor4D,
  dy: tf.Tensor4D,
  filterShape: [number, number, number, number],
  strides: number | [number, number],
  pad: "valid" | "same" | number | tf.backend_util.ExplicitPadding,
  dilations: number | [number, number] = 1,
  dimRoundingMode?: "floor" | "round" | "ceil",
): tf.Tensor4D {
  const info = tf.backend_util.computeConv2DInfo(
    x.shape,
    filterShape,
    strides,
    dilations,
    pad,
    dimRoundingMode,
    false,
    "channelsLast",
  );
  const [kh, kw, cin, cout] = filterShape;
  const { top, bottom, left, right } = info.padInfo;
  const { strideHeight: sh, strideWidth: sw, dilationHeight: dh, dilationWidth: dw } = info;
  const { batchSize: b, outHeight: ho, outWidth: wo } = info;
  if (dy.shape[1] !== ho || dy.shape[2] !== wo || dy.shape[3] !== cout) {
    throw new Error(
      `Conv2DBackpropFilter: dy shape ${
        JSON.stringify(dy.shape)
      } does not match the output [${b}, ${ho}, ${wo}, ${cout}]`,
    );
  }
  return tf.tidy(() => {
    const padded = top || bottom || left || right
      ? tf.pad(x, [[0, 0], [Math.max(0, top), Math.max(0, bottom)], [Math.max(0, left), Math.max(0, right)], [
        0,
        0,
      ]])
      : x;
    const channelsFirst = tf.transpose(padded, [3, 0, 1, 2]); // [Cin, B, Hp, Wp]
    const dy2 = tf.reshape(dy, [b * ho * wo, cout]);
    const taps: tf.Tensor[] = [];
    for (let i = 0; i < kh; i++) {
      for (let j = 0; j < kw; j++) {
        const y0 = i * dh;
        const x0 = j * dw;
        const window = sh === 1 && sw === 1
          ? tf.slice(channelsFirst, [0, 0, y0, x0], [cin, b, ho, wo])
          : tf.stridedSlice(
            channelsFirst,
            [0, 0, y0, x0],
            [cin, b, y0 + (ho - 1) * sh + 1, x0 + (wo - 1) * sw + 1],
            [1, 1, sh, sw],
          );
        taps.push(tf.matMul(tf.reshape(window, [cin, b * ho * wo]) as tf.Tensor2D, dy2 as tf.Tensor2D));
      }
    }
    return tf.reshape(tf.stack(taps), [kh, kw, cin, cout]) as tf.Tensor4D;
  });
}

/**
 * dx for an NHWC conv2d (dilation 1) as a forward convolution: dy [B, Ho, Wo, Cout],
 * filter [kh, kw, Cin, Cout] -> [B, H, W, Cin].
 */
export function conv2dBackpropInputByConv(
  inputShape: [number, number, number, number],
  dy: tf.Tensor4D,
  filter: tf.Tensor4D,
  strides: number | [number, number],
  pad: "valid" | "same" | number | tf.backend_util.ExplicitPadding,
  dimRoundingMode?: "floor" | "round" | "ceil",
): tf.Tensor4D {
  const info = tf.backend_util.computeConv2DInfo(
    inputShape,
    filter.shape,
    strides,
    1,
    pad,
    dimRoundingMode,
    false,
    "channelsLast",
  );
  const [kh, kw, cin, cout] = filter.shape;
  const [b, h, w] = inputShape;
  const { strideHeight: sh, strideWidth: sw, outHeight: ho, outWidth: wo } = info;
  const { top, left } = info.padInfo;
  return tf.tidy(() => {
    // Insert (stride - 1) zeros between dy's rows and columns.
    let dilated: tf.Tensor4D = dy;
    if (sh > 1 || sw > 1) {
      const expanded = tf.pad(tf.reshape(dy, [b, ho, 1, wo, 1, cout]), [[0, 0], [0, 0], [0, sh - 1], [0, 0], [
        0,
        sw - 1,
      ], [0, 0]]);
      dilated = tf.slice(tf.reshape(expanded, [b, ho * sh, wo * sw, cout]), [0, 0, 0, 0], [
        b,
        (ho - 1) * sh + 1,
        (wo - 1) * sw + 1,
        cout,
      ]) as tf.Tensor4D;
    }
    const dh = dilated.shape[1];
    const dw = dilated.shape[2];
    const padTop = kh - 1 - top;
    const padLeft = kw - 1 - left;
    const padBottom = h + kh - 1 - dh - padTop;
    const padRight = w + kw - 1 - dw - padLeft;
    // Negative pads (rows the forward conv never read) become crops.
    const cropped = tf.slice(
      dilated,
      [0, Math.max(0, -padTop), Math.max(0, -padLeft), 0],
      [
        b,
        dh - Math.max(0, -padTop) - Math.max(0, -padBottom),
        dw - Math.max(0, -padLeft) - Math.max(0, -padRight),
        cout,
      ],
    );
    const padded = tf.pad(cropped, [[0, 0], [Math.max(0, padTop), Math.max(0, padBottom)], [
      Math.max(0, padLeft),
      Math.max(0, padRight),
    ], [0, 0]]);
    // Rotate by 180 degrees and swap in/out: rotated[i, j] = filter[kh-1-i, kw-1-j]^T. The taps are
    // concatenated in reverse order (wasm's Reverse kernel is slow).
    const taps = tf.reshape(tf.transpose(filter, [0, 1, 3, 2]), [kh * kw, cout * cin]);
    const reversed = kh * kw === 1 ? taps : tf.concat(
      Array.from({ length: kh * kw }, (_, t) => tf.slice(taps, [kh * kw - 1 - t, 0], [1, cout * cin])),
      0,
    );
    const rotated = tf.reshape(reversed, [kh, kw, cout, cin]) as tf.Tensor4D;
    const dx = tf.conv2d(padded as tf.Tensor4D, rotated, 1, "valid");
    if (dx.shape[3] !== cin) throw new Error("Conv2DBackpropInput: internal channel mismatch");
    return dx;
  });
}

/**
 * Gradient of tf.image.resizeNearestNeighbor (NHWC): dy [B, outH, outW, C] -> dx [B, inH, inW, C],
 * dx[src(y), src(x)] += dy[y, x] with src() the forward rule of tfjs' ResizeNearestNeighbor.
 */
export function resizeNearestNeighborGrad(
  dy: tf.Tensor4D,
  inputShape: readonly [number, number, number, number],
  alignCorners: boolean,
  halfPixelCenters: boolean,
): tf.Tensor4D {
  const [b, inH, inW, c] = inputShape;
  const [, outH, outW] = dy.shape;
  if (!alignCorners && !halfPixelCenters && outH % inH === 0 && outW % inW === 0) {
    const sH = outH / inH;
    const sW = outW / inW;
    return tf.tidy(() => tf.sum(tf.reshape(dy, [b, inH, sH, inW, sW, c]), [2, 4]) as tf.Tensor4D);
  }
  const source = (outSize: number, inSize: number) => {
    const ratio = alignCorners && outSize > 1 ? (inSize - 1) / (outSize - 1) : inSize / outSize;
    return Array.from({ length: outSize }, (_, o) => {
      const frac = halfPixelCenters ? (o + 0.5) * ratio : o * ratio;
      const nearest = Math.min(inSize - 1, alignCorners ? Math.round(frac) : Math.floor(frac));
      return halfPixelCenters ? Math.max(0, nearest) : nearest;
    });
  };
  const rows = source(outH, inH);
  const cols = source(outW, inW);
  const g = dy.dataSync();
  const dx = new Float32Array(b * inH * inW * c);
  for (let n = 0; n < b; n++) {
    for (let y = 0; y < outH; y++) {
      for (let x = 0; x < outW; x++) {
        const src = ((n * inH + rows[y]) * inW + cols[x]) * c;
        const dst = ((n * outH + y) * outW + x) * c;
        for (let ch = 0; ch < c; ch++) dx[src + ch] += g[dst + ch];
      }
    }
  }
  return tf.tensor4d(dx, [b, inH, inW, c]);
}
