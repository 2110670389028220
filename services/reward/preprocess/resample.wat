;; Pillow's 8-bit separable resample passes and the CLIP normalization, in WebAssembly SIMD.
;; The source of resample_wasm.ts (`deno task gen:wasm`); resample_wasm_test.ts checks the two agree.
;;
;; The arithmetic is Pillow's (Resample.c, ImagingResampleHorizontal_8bpc / Vertical_8bpc): int32
;; accumulators starting at 1 << 21, plus byte * 22-bit tap per tap, then `>> 22` and clip to a byte.
;; Integer sums do not depend on the order of the adds (they stay inside int32, see pil_resize.ts),
;; so four or sixteen lanes at once give Pillow's bytes exactly. The clip is two saturating narrows:
;; i32 -> i16 (signed saturation) then i16 -> u8 (unsigned saturation) is clip8 for any int32.
;;
;; All pointers are byte offsets into the exported memory, laid out by resample_wasm.ts, which also
;; leaves 16 bytes of slack after every buffer a pass reads or writes past its last pixel.
(module
  (memory (export "memory") 1)

  ;; Horizontal pass, two taps per step. For each of `rows` rows (stride `rowBytes` from `src`) and
  ;; each of `outW` output pixels xx: `pairs[xx]` steps over the pixels from byte `first[xx]` of the
  ;; row, step j reading taps 2j and 2j+1 (6 bytes) and their coefficients from `coef + (xx*maxPairs
  ;; + j)*32`: eight i16 "high" parts (h0 h1 h0 h1 h0 h1 0 0) then eight "low" parts, where each
  ;; 22-bit tap w = h * 2048 + l, l in [0, 2048) (so both fit i16 and w's product is exact:
  ;; p*w = 2048*(p*h) + p*l). A byte swizzle puts (r0 r1 g0 g1 b0 b1) into zero-extended i16 lanes,
  ;; and i32x4.dot_i16x8_s sums each channel's pair into one int32 lane. An odd tap count has a
  ;; zero coefficient for its last pair's second tap. 3 bytes per output pixel from `dst` on (a
  ;; 4-byte store whose 4th byte the next pixel overwrites).
  (func (export "horizontal")
    (param $src i32) (param $rowBytes i32) (param $rows i32) (param $outW i32)
    (param $first i32) (param $pairs i32) (param $coef i32) (param $maxPairs i32) (param $dst i32)
    (local $r i32) (local $xx i32) (local $row i32) (local $p i32) (local $k i32) (local $end i32)
    (local $hi v128) (local $lo v128) (local $px v128) (local $acc v128)
    (block $rowsDone
      (loop $rowLoop
        (br_if $rowsDone (i32.ge_u (local.get $r) (local.get $rows)))
        (local.set $row (i32.add (local.get $src) (i32.mul (local.get $r) (local.get $rowBytes))))
        (local.set $xx (i32.const 0))
        (block $colsDone
          (loop $colLoop
            (br_if $colsDone (i32.ge_u (local.get $xx) (local.get $outW)))
            (local.set $p (i32.add (local.get $row)
              (i32.load (i32.add (local.get $first) (i32.shl (local.get $xx) (i32.const 2))))))
            (local.set $k (i32.add (local.get $coef)
              (i32.shl (i32.mul (local.get $xx) (local.get $maxPairs)) (i32.const 5))))
            (local.set $end (i32.add (local.get $k)
              (i32.shl (i32.load (i32.add (local.get $pairs) (i32.shl (local.get $xx) (i32.const 2))))
                       (i32.const 5))))
            (local.set $hi (v128.const i32x4 0 0 0 0))
            (local.set $lo (v128.const i32x4 0 0 0 0))
            (block $tapsDone
              (loop $tapLoop
                (br_if $tapsDone (i32.ge_u (local.get $k) (local.get $end)))
                (local.set $px (i8x16.swizzle (v128.load64_zero (local.get $p))
                  (v128.const i8x16 0 128 3 128 1 128 4 128 2 128 5 128 128 128 128 128)))
                (local.set $hi (i32x4.add (local.get $hi)
                  (i32x4.dot_i16x8_s (local.get $px) (v128.load (local.get $k)))))
                (local.set $lo (i32x4.add (local.get $lo)
                  (i32x4.dot_i16x8_s (local.get $px) (v128.load offset=16 (local.get $k)))))
                (local.set $p (i32.add (local.get $p) (i32.const 6)))
                (local.set $k (i32.add (local.get $k) (i32.const 32)))
                (br $tapLoop)))
            ;; (1 << 21) + 2048 * hi + lo, then >> 22 and clip8.
            (local.set $acc (i32x4.add (i32x4.add (i32x4.shl (local.get $hi) (i32.const 11)) (local.get $lo))
                                       (i32x4.splat (i32.const 2097152))))
            (local.set $acc (i32x4.shr_s (local.get $acc) (i32.const 22)))
            (local.set $acc (i16x8.narrow_i32x4_s (local.get $acc) (local.get $acc)))
            (v128.store32_lane 0 (local.get $dst) (i8x16.narrow_i16x8_u (local.get $acc) (local.get $acc)))
            (local.set $dst (i32.add (local.get $dst) (i32.const 3)))
            (local.set $xx (i32.add (local.get $xx) (i32.const 1)))
            (br $colLoop)))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $rowLoop))))

  ;; Horizontal pass over four rows at once: the same arithmetic and coefficient layout as
  ;; `horizontal`, but each output column's pair vectors are loaded once for rows r .. r+3 (rows a
  ;; multiple of 4; resize_wasm.ts runs the remainder with `horizontal`). The coefficient loads and
  ;; the loop overhead were half of the one-row loop's instructions per step; here they are shared by
  ;; four rows. The four rows' results are narrowed together into one vector (row k in bytes 4k ..
  ;; 4k+2) and stored as 4 bytes per row, except at the last column, where a 4-byte store would spill
  ;; into the next row's first pixel (already written): there 2 + 1 bytes.
  (func (export "horizontal4")
    (param $src i32) (param $rowBytes i32) (param $rows i32) (param $outW i32)
    (param $first i32) (param $pairs i32) (param $coef i32) (param $maxPairs i32) (param $dst i32)
    (local $r i32) (local $xx i32) (local $row i32) (local $p i32) (local $k i32) (local $end i32)
    (local $rb2 i32) (local $rb3 i32) (local $stride i32) (local $o i32) (local $last i32)
    (local $ch v128) (local $cl v128) (local $px v128) (local $bytes v128)
    (local $h0 v128) (local $l0 v128) (local $h1 v128) (local $l1 v128)
    (local $h2 v128) (local $l2 v128) (local $h3 v128) (local $l3 v128)
    (local.set $rb2 (i32.shl (local.get $rowBytes) (i32.const 1)))
    (local.set $rb3 (i32.add (local.get $rb2) (local.get $rowBytes)))
    (local.set $stride (i32.mul (local.get $outW) (i32.const 3)))
    (local.set $last (i32.sub (local.get $outW) (i32.const 1)))
    (block $rowsDone
      (loop $rowLoop
        (br_if $rowsDone (i32.ge_u (local.get $r) (local.get $rows)))
        (local.set $row (i32.add (local.get $src) (i32.mul (local.get $r) (local.get $rowBytes))))
        (local.set $o (i32.add (local.get $dst) (i32.mul (local.get $r) (local.get $stride))))
        (local.set $xx (i32.const 0))
        (block $colsDone
          (loop $colLoop
            (br_if $colsDone (i32.ge_u (local.get $xx) (local.get $outW)))
            (local.set $p (i32.add (local.get $row)
              (i32.load (i32.add (local.get $first) (i32.shl (local.get $xx) (i32.const 2))))))
            (local.set $k (i32.add (local.get $coef)
              (i32.shl (i32.mul (local.get $xx) (local.get $maxPairs)) (i32.const 5))))
            (local.set $end (i32.add (local.get $k)
              (i32.shl (i32.load (i32.add (local.get $pairs) (i32.shl (local.get $xx) (i32.const 2))))
                       (i32.const 5))))
            (local.set $h0 (v128.const i32x4 0 0 0 0))
            (local.set $l0 (local.get $h0))
            (local.set $h1 (local.get $h0))
            (local.set $l1 (local.get $h0))
            (local.set $h2 (local.get $h0))
            (local.set $l2 (local.get $h0))
            (local.set $h3 (local.get $h0))
            (local.set $l3 (local.get $h0))
            (block $tapsDone
              (loop $tapLoop
                (br_if $tapsDone (i32.ge_u (local.get $k) (local.get $end)))
                (local.set $ch (v128.load (local.get $k)))
                (local.set $cl (v128.load offset=16 (local.get $k)))
                (local.set $px (i8x16.swizzle (v128.load64_zero (local.get $p))
                  (v128.const i8x16 0 128 3 128 1 128 4 128 2 128 5 128 128 128 128 128)))
                (local.set $h0 (i32x4.add (local.get $h0) (i32x4.dot_i16x8_s (local.get $px) (local.get $ch))))
                (local.set $l0 (i32x4.add (local.get $l0) (i32x4.dot_i16x8_s (local.get $px) (local.get $cl))))
                (local.set $px (i8x16.swizzle
                  (v128.load64_zero (i32.add (local.get $p) (local.get $rowBytes)))
                  (v128.const i8x16 0 128 3 128 1 128 4 128 2 128 5 128 128 128 128 128)))
                (local.set $h1 (i32x4.add (local.get $h1) (i32x4.dot_i16x8_s (local.get $px) (local.get $ch))))
                (local.set $l1 (i32x4.add (local.get $l1) (i32x4.dot_i16x8_s (local.get $px) (local.get $cl))))
                (local.set $px (i8x16.swizzle
                  (v128.load64_zero (i32.add (local.get $p) (local.get $rb2)))
                  (v128.const i8x16 0 128 3 128 1 128 4 128 2 128 5 128 128 128 128 128)))
                (local.set $h2 (i32x4.add (local.get $h2) (i32x4.dot_i16x8_s (local.get $px) (local.get $ch))))
                (local.set $l2 (i32x4.add (local.get $l2) (i32x4.dot_i16x8_s (local.get $px) (local.get $cl))))
                (local.set $px (i8x16.swizzle
                  (v128.load64_zero (i32.add (local.get $p) (local.get $rb3)))
                  (v128.const i8x16 0 128 3 128 1 128 4 128 2 128 5 128 128 128 128 128)))
                (local.set $h3 (i32x4.add (local.get $h3) (i32x4.dot_i16x8_s (local.get $px) (local.get $ch))))
                (local.set $l3 (i32x4.add (local.get $l3) (i32x4.dot_i16x8_s (local.get $px) (local.get $cl))))
                (local.set $p (i32.add (local.get $p) (i32.const 6)))
                (local.set $k (i32.add (local.get $k) (i32.const 32)))
                (br $tapLoop)))
            ;; Per row (1 << 21) + 2048 * hi + lo, >> 22; then clip8 of all four rows by two narrows.
            (local.set $bytes (i8x16.narrow_i16x8_u
              (i16x8.narrow_i32x4_s
                (i32x4.shr_s (i32x4.add (i32x4.add (i32x4.shl (local.get $h0) (i32.const 11)) (local.get $l0))
                                        (i32x4.splat (i32.const 2097152))) (i32.const 22))
                (i32x4.shr_s (i32x4.add (i32x4.add (i32x4.shl (local.get $h1) (i32.const 11)) (local.get $l1))
                                        (i32x4.splat (i32.const 2097152))) (i32.const 22)))
              (i16x8.narrow_i32x4_s
                (i32x4.shr_s (i32x4.add (i32x4.add (i32x4.shl (local.get $h2) (i32.const 11)) (local.get $l2))
                                        (i32x4.splat (i32.const 2097152))) (i32.const 22))
                (i32x4.shr_s (i32x4.add (i32x4.add (i32x4.shl (local.get $h3) (i32.const 11)) (local.get $l3))
                                        (i32x4.splat (i32.const 2097152))) (i32.const 22)))))
            (if (i32.lt_u (local.get $xx) (local.get $last))
              (then
                (v128.store32_lane 0 (local.get $o) (local.get $bytes))
                (v128.store32_lane 1 (i32.add (local.get $o) (local.get $stride)) (local.get $bytes))
                (v128.store32_lane 2 (i32.add (local.get $o) (i32.shl (local.get $stride) (i32.const 1)))
                  (local.get $bytes))
                (v128.store32_lane 3 (i32.add (local.get $o) (i32.mul (local.get $stride) (i32.const 3)))
                  (local.get $bytes)))
              (else
                (v128.store16_lane 0 (local.get $o) (local.get $bytes))
                (v128.store8_lane offset=2 2 (local.get $o) (local.get $bytes))
                (v128.store16_lane 2 (i32.add (local.get $o) (local.get $stride)) (local.get $bytes))
                (v128.store8_lane offset=2 6 (i32.add (local.get $o) (local.get $stride)) (local.get $bytes))
                (v128.store16_lane 4 (i32.add (local.get $o) (i32.shl (local.get $stride) (i32.const 1)))
                  (local.get $bytes))
                (v128.store8_lane offset=2 10 (i32.add (local.get $o) (i32.shl (local.get $stride) (i32.const 1)))
                  (local.get $bytes))
                (v128.store16_lane 6 (i32.add (local.get $o) (i32.mul (local.get $stride) (i32.const 3)))
                  (local.get $bytes))
                (v128.store8_lane offset=2 14 (i32.add (local.get $o) (i32.mul (local.get $stride) (i32.const 3)))
                  (local.get $bytes))))
            (local.set $o (i32.add (local.get $o) (i32.const 3)))
            (local.set $xx (i32.add (local.get $xx) (i32.const 1)))
            (br $colLoop)))
        (local.set $r (i32.add (local.get $r) (i32.const 4)))
        (br $rowLoop))))

  ;; `horizontal4` with i8x16.relaxed_swizzle: exact here because every index is < 16 or >= 128
  ;; (relaxed-simd makes both deterministic: a byte, or 0); only 16..127 are implementation-defined.
  (func (export "horizontal4r")
    (param $src i32) (param $rowBytes i32) (param $rows i32) (param $outW i32)
    (param $first i32) (param $pairs i32) (param $coef i32) (param $maxPairs i32) (param $dst i32)
    (local $r i32) (local $xx i32) (local $row i32) (local $p i32) (local $k i32) (local $end i32)
    (local $rb2 i32) (local $rb3 i32) (local $stride i32) (local $o i32) (local $last i32)
    (local $ch v128) (local $cl v128) (local $px v128) (local $bytes v128)
    (local $h0 v128) (local $l0 v128) (local $h1 v128) (local $l1 v128)
    (local $h2 v128) (local $l2 v128) (local $h3 v128) (local $l3 v128)
    (local.set $rb2 (i32.shl (local.get $rowBytes) (i32.const 1)))
    (local.set $rb3 (i32.add (local.get $rb2) (local.get $rowBytes)))
    (local.set $stride (i32.mul (local.get $outW) (i32.const 3)))
    (local.set $last (i32.sub (local.get $outW) (i32.const 1)))
    (block $rowsDone
      (loop $rowLoop
        (br_if $rowsDone (i32.ge_u (local.get $r) (local.get $rows)))
        (local.set $row (i32.add (local.get $src) (i32.mul (local.get $r) (local.get $rowBytes))))
        (local.set $o (i32.add (local.get $dst) (i32.mul (local.get $r) (local.get $stride))))
        (local.set $xx (i32.const 0))
        (block $colsDone
          (loop $colLoop
            (br_if $colsDone (i32.ge_u (local.get $xx) (local.get $outW)))
            (local.set $p (i32.add (local.get $row)
              (i32.load (i32.add (local.get $first) (i32.shl (local.get $xx) (i32.const 2))))))
            (local.set $k (i32.add (local.get $coef)
              (i32.shl (i32.mul (local.get $xx) (local.get $maxPairs)) (i32.const 5))))
            (local.set $end (i32.add (local.get $k)
              (i32.shl (i32.load (i32.add (local.get $pairs) (i32.shl (local.get $xx) (i32.const 2))))
                       (i32.const 5))))
            (local.set $h0 (v128.const i32x4 0 0 0 0))
            (local.set $l0 (local.get $h0))
            (local.set $h1 (local.get $h0))
            (local.set $l1 (local.get $h0))
            (local.set $h2 (local.get $h0))
            (local.set $l2 (local.get $h0))
            (local.set $h3 (local.get $h0))
            (local.set $l3 (local.get $h0))
            (block $tapsDone
              (loop $tapLoop
                (br_if $tapsDone (i32.ge_u (local.get $k) (local.get $end)))
                (local.set $ch (v128.load (local.get $k)))
                (local.set $cl (v128.load offset=16 (local.get $k)))
                (local.set $px (i8x16.relaxed_swizzle (v128.load64_zero (local.get $p))
                  (v128.const i8x16 0 128 3 128 1 128 4 128 2 128 5 128 128 128 128 128)))
                (local.set $h0 (i32x4.add (local.get $h0) (i32x4.dot_i16x8_s (local.get $px) (local.get $ch))))
                (local.set $l0 (i32x4.add (local.get $l0) (i32x4.dot_i16x8_s (local.get $px) (local.get $cl))))
                (local.set $px (i8x16.relaxed_swizzle
                  (v128.load64_zero (i32.add (local.get $p) (local.get $rowBytes)))
                  (v128.const i8x16 0 128 3 128 1 128 4 128 2 128 5 128 128 128 128 128)))
                (local.set $h1 (i32x4.add (local.get $h1) (i32x4.dot_i16x8_s (local.get $px) (local.get $ch))))
                (local.set $l1 (i32x4.add (local.get $l1) (i32x4.dot_i16x8_s (local.get $px) (local.get $cl))))
                (local.set $px (i8x16.relaxed_swizzle
                  (v128.load64_zero (i32.add (local.get $p) (local.get $rb2)))
                  (v128.const i8x16 0 128 3 128 1 128 4 128 2 128 5 128 128 128 128 128)))
                (local.set $h2 (i32x4.add (local.get $h2) (i32x4.dot_i16x8_s (local.get $px) (local.get $ch))))
                (local.set $l2 (i32x4.add (local.get $l2) (i32x4.dot_i16x8_s (local.get $px) (local.get $cl))))
                (local.set $px (i8x16.relaxed_swizzle
                  (v128.load64_zero (i32.add (local.get $p) (local.get $rb3)))
                  (v128.const i8x16 0 128 3 128 1 128 4 128 2 128 5 128 128 128 128 128)))
                (local.set $h3 (i32x4.add (local.get $h3) (i32x4.dot_i16x8_s (local.get $px) (local.get $ch))))
                (local.set $l3 (i32x4.add (local.get $l3) (i32x4.dot_i16x8_s (local.get $px) (local.get $cl))))
                (local.set $p (i32.add (local.get $p) (i32.const 6)))
                (local.set $k (i32.add (local.get $k) (i32.const 32)))
                (br $tapLoop)))
            ;; Per row (1 << 21) + 2048 * hi + lo, >> 22; then clip8 of all four rows by two narrows.
            (local.set $bytes (i8x16.narrow_i16x8_u
              (i16x8.narrow_i32x4_s
                (i32x4.shr_s (i32x4.add (i32x4.add (i32x4.shl (local.get $h0) (i32.const 11)) (local.get $l0))
                                        (i32x4.splat (i32.const 2097152))) (i32.const 22))
                (i32x4.shr_s (i32x4.add (i32x4.add (i32x4.shl (local.get $h1) (i32.const 11)) (local.get $l1))
                                        (i32x4.splat (i32.const 2097152))) (i32.const 22)))
              (i16x8.narrow_i32x4_s
                (i32x4.shr_s (i32x4.add (i32x4.add (i32x4.shl (local.get $h2) (i32.const 11)) (local.get $l2))
                                        (i32x4.splat (i32.const 2097152))) (i32.const 22))
                (i32x4.shr_s (i32x4.add (i32x4.add (i32x4.shl (local.get $h3) (i32.const 11)) (local.get $l3))
                                        (i32x4.splat (i32.const 2097152))) (i32.const 22)))))
            (if (i32.lt_u (local.get $xx) (local.get $last))
              (then
                (v128.store32_lane 0 (local.get $o) (local.get $bytes))
                (v128.store32_lane 1 (i32.add (local.get $o) (local.get $stride)) (local.get $bytes))
                (v128.store32_lane 2 (i32.add (local.get $o) (i32.shl (local.get $stride) (i32.const 1)))
                  (local.get $bytes))
                (v128.store32_lane 3 (i32.add (local.get $o) (i32.mul (local.get $stride) (i32.const 3)))
                  (local.get $bytes)))
              (else
                (v128.store16_lane 0 (local.get $o) (local.get $bytes))
                (v128.store8_lane offset=2 2 (local.get $o) (local.get $bytes))
                (v128.store16_lane 2 (i32.add (local.get $o) (local.get $stride)) (local.get $bytes))
                (v128.store8_lane offset=2 6 (i32.add (local.get $o) (local.get $stride)) (local.get $bytes))
                (v128.store16_lane 4 (i32.add (local.get $o) (i32.shl (local.get $stride) (i32.const 1)))
                  (local.get $bytes))
                (v128.store8_lane offset=2 10 (i32.add (local.get $o) (i32.shl (local.get $stride) (i32.const 1)))
                  (local.get $bytes))
                (v128.store16_lane 6 (i32.add (local.get $o) (i32.mul (local.get $stride) (i32.const 3)))
                  (local.get $bytes))
                (v128.store8_lane offset=2 14 (i32.add (local.get $o) (i32.mul (local.get $stride) (i32.const 3)))
                  (local.get $bytes))))
            (local.set $o (i32.add (local.get $o) (i32.const 3)))
            (local.set $xx (i32.add (local.get $xx) (i32.const 1)))
            (br $colLoop)))
        (local.set $r (i32.add (local.get $r) (i32.const 4)))
        (br $rowLoop))))

  ;; Horizontal pass over four rows, four taps per step with no idle lanes (the dense layout):
  ;; step j of output pixel xx reads taps 4j .. 4j+3 (12 bytes from byte `first[xx]` + 12j) and
  ;; three coefficient vectors from `coef + (xx*maxSteps + j)*48`: A-high (h0 h1 h0 h1 h0 h1 h2 h3),
  ;; A-low (same with the low parts) and B (h2 h3 h2 h3 l2 l3 l2 l3). Swizzle A puts (r0 r1 g0 g1 b0
  ;; b1 r2 r3) into i16 lanes and swizzle B (g2 g3 b2 b3 g2 g3 b2 b3), so the three dot products give
  ;; lanes (r01 g01 b01 r23) high and low and (g23 b23) high and low: 12 channel-taps in 3 dot
  ;; products, where `horizontal4` spends 4. After the taps, per row: T = 2048*A-high + A-low holds
  ;; (r01 g01 b01 r23), U = 2048*B + B>>64 holds (g23 b23), and T + (T3 U0 U1 -) is (r g b -); the
  ;; 4th lane is never stored whole (see horizontal4), so it may hold anything. Rows a multiple of 4;
  ;; taps past a pixel's count have zero coefficients (its last step may read up to 13 bytes past
  ;; the row; resample_wasm.ts leaves 16 bytes of slack).
  (func (export "horizontal4d")
    (param $src i32) (param $rowBytes i32) (param $rows i32) (param $outW i32)
    (param $first i32) (param $steps i32) (param $coef i32) (param $maxSteps i32) (param $dst i32)
    (local $r i32) (local $xx i32) (local $row i32) (local $p i32) (local $k i32) (local $end i32)
    (local $rb2 i32) (local $rb3 i32) (local $stride i32) (local $o i32) (local $last i32)
    (local $ca v128) (local $cl v128) (local $cb v128) (local $v v128) (local $px v128) (local $bytes v128)
    (local $a0 v128) (local $l0 v128) (local $b0 v128) (local $a1 v128) (local $l1 v128) (local $b1 v128)
    (local $a2 v128) (local $l2 v128) (local $b2 v128) (local $a3 v128) (local $l3 v128) (local $b3 v128)
    (local.set $rb2 (i32.shl (local.get $rowBytes) (i32.const 1)))
    (local.set $rb3 (i32.add (local.get $rb2) (local.get $rowBytes)))
    (local.set $stride (i32.mul (local.get $outW) (i32.const 3)))
    (local.set $last (i32.sub (local.get $outW) (i32.const 1)))
    (block $rowsDone
      (loop $rowLoop
        (br_if $rowsDone (i32.ge_u (local.get $r) (local.get $rows)))
        (local.set $row (i32.add (local.get $src) (i32.mul (local.get $r) (local.get $rowBytes))))
        (local.set $o (i32.add (local.get $dst) (i32.mul (local.get $r) (local.get $stride))))
        (local.set $xx (i32.const 0))
        (block $colsDone
          (loop $colLoop
            (br_if $colsDone (i32.ge_u (local.get $xx) (local.get $outW)))
            (local.set $p (i32.add (local.get $row)
              (i32.load (i32.add (local.get $first) (i32.shl (local.get $xx) (i32.const 2))))))
            (local.set $k (i32.add (local.get $coef)
              (i32.mul (i32.mul (local.get $xx) (local.get $maxSteps)) (i32.const 48))))
            (local.set $end (i32.add (local.get $k)
              (i32.mul (i32.load (i32.add (local.get $steps) (i32.shl (local.get $xx) (i32.const 2))))
                       (i32.const 48))))
            (local.set $a0 (v128.const i32x4 0 0 0 0))
            (local.set $l0 (local.get $a0)) (local.set $b0 (local.get $a0))
            (local.set $a1 (local.get $a0)) (local.set $l1 (local.get $a0)) (local.set $b1 (local.get $a0))
            (local.set $a2 (local.get $a0)) (local.set $l2 (local.get $a0)) (local.set $b2 (local.get $a0))
            (local.set $a3 (local.get $a0)) (local.set $l3 (local.get $a0)) (local.set $b3 (local.get $a0))
            (block $tapsDone
              (loop $tapLoop
                (br_if $tapsDone (i32.ge_u (local.get $k) (local.get $end)))
                (local.set $ca (v128.load (local.get $k)))
                (local.set $cl (v128.load offset=16 (local.get $k)))
                (local.set $cb (v128.load offset=32 (local.get $k)))
                (local.set $v (v128.load (local.get $p)))
                (local.set $px (i8x16.swizzle (local.get $v)
                  (v128.const i8x16 0 128 3 128 1 128 4 128 2 128 5 128 6 128 9 128)))
                (local.set $a0 (i32x4.add (local.get $a0) (i32x4.dot_i16x8_s (local.get $px) (local.get $ca))))
                (local.set $l0 (i32x4.add (local.get $l0) (i32x4.dot_i16x8_s (local.get $px) (local.get $cl))))
                (local.set $b0 (i32x4.add (local.get $b0) (i32x4.dot_i16x8_s (local.get $cb)
                  (i8x16.swizzle (local.get $v)
                    (v128.const i8x16 7 128 10 128 8 128 11 128 7 128 10 128 8 128 11 128)))))
                (local.set $v (v128.load (i32.add (local.get $p) (local.get $rowBytes))))
                (local.set $px (i8x16.swizzle (local.get $v)
                  (v128.const i8x16 0 128 3 128 1 128 4 128 2 128 5 128 6 128 9 128)))
                (local.set $a1 (i32x4.add (local.get $a1) (i32x4.dot_i16x8_s (local.get $px) (local.get $ca))))
                (local.set $l1 (i32x4.add (local.get $l1) (i32x4.dot_i16x8_s (local.get $px) (local.get $cl))))
                (local.set $b1 (i32x4.add (local.get $b1) (i32x4.dot_i16x8_s (local.get $cb)
                  (i8x16.swizzle (local.get $v)
                    (v128.const i8x16 7 128 10 128 8 128 11 128 7 128 10 128 8 128 11 128)))))
                (local.set $v (v128.load (i32.add (local.get $p) (local.get $rb2))))
                (local.set $px (i8x16.swizzle (local.get $v)
                  (v128.const i8x16 0 128 3 128 1 128 4 128 2 128 5 128 6 128 9 128)))
                (local.set $a2 (i32x4.add (local.get $a2) (i32x4.dot_i16x8_s (local.get $px) (local.get $ca))))
                (local.set $l2 (i32x4.add (local.get $l2) (i32x4.dot_i16x8_s (local.get $px) (local.get $cl))))
                (local.set $b2 (i32x4.add (local.get $b2) (i32x4.dot_i16x8_s (local.get $cb)
                  (i8x16.swizzle (local.get $v)
                    (v128.const i8x16 7 128 10 128 8 128 11 128 7 128 10 128 8 128 11 128)))))
                (local.set $v (v128.load (i32.add (local.get $p) (local.get $rb3))))
                (local.set $px (i8x16.swizzle (local.get $v)
                  (v128.const i8x16 0 128 3 128 1 128 4 128 2 128 5 128 6 128 9 128)))
                (local.set $a3 (i32x4.add (local.get $a3) (i32x4.dot_i16x8_s (local.get $px) (local.get $ca))))
                (local.set $l3 (i32x4.add (local.get $l3) (i32x4.dot_i16x8_s (local.get $px) (local.get $cl))))
                (local.set $b3 (i32x4.add (local.get $b3) (i32x4.dot_i16x8_s (local.get $cb)
                  (i8x16.swizzle (local.get $v)
                    (v128.const i8x16 7 128 10 128 8 128 11 128 7 128 10 128 8 128 11 128)))))
                (local.set $p (i32.add (local.get $p) (i32.const 12)))
                (local.set $k (i32.add (local.get $k) (i32.const 48)))
                (br $tapLoop)))
            (local.set $bytes (i8x16.narrow_i16x8_u
              (i16x8.narrow_i32x4_s (call $dense (local.get $a0) (local.get $l0) (local.get $b0))
                                    (call $dense (local.get $a1) (local.get $l1) (local.get $b1)))
              (i16x8.narrow_i32x4_s (call $dense (local.get $a2) (local.get $l2) (local.get $b2))
                                    (call $dense (local.get $a3) (local.get $l3) (local.get $b3)))))
            (if (i32.lt_u (local.get $xx) (local.get $last))
              (then
                (v128.store32_lane 0 (local.get $o) (local.get $bytes))
                (v128.store32_lane 1 (i32.add (local.get $o) (local.get $stride)) (local.get $bytes))
                (v128.store32_lane 2 (i32.add (local.get $o) (i32.shl (local.get $stride) (i32.const 1)))
                  (local.get $bytes))
                (v128.store32_lane 3 (i32.add (local.get $o) (i32.mul (local.get $stride) (i32.const 3)))
                  (local.get $bytes)))
              (else
                (v128.store16_lane 0 (local.get $o) (local.get $bytes))
                (v128.store8_lane offset=2 2 (local.get $o) (local.get $bytes))
                (v128.store16_lane 2 (i32.add (local.get $o) (local.get $stride)) (local.get $bytes))
                (v128.store8_lane offset=2 6 (i32.add (local.get $o) (local.get $stride)) (local.get $bytes))
                (v128.store16_lane 4 (i32.add (local.get $o) (i32.shl (local.get $stride) (i32.const 1)))
                  (local.get $bytes))
                (v128.store8_lane offset=2 10 (i32.add (local.get $o) (i32.shl (local.get $stride) (i32.const 1)))
                  (local.get $bytes))
                (v128.store16_lane 6 (i32.add (local.get $o) (i32.mul (local.get $stride) (i32.const 3)))
                  (local.get $bytes))
                (v128.store8_lane offset=2 14 (i32.add (local.get $o) (i32.mul (local.get $stride) (i32.const 3)))
                  (local.get $bytes))))
            (local.set $o (i32.add (local.get $o) (i32.const 3)))
            (local.set $xx (i32.add (local.get $xx) (i32.const 1)))
            (br $colLoop)))
        (local.set $r (i32.add (local.get $r) (i32.const 4)))
        (br $rowLoop))))

  ;; One row's dense sums -> ((1 << 21) + sum) >> 22 per channel in lanes 0..2 (see horizontal4d).
  (func $dense (param $a v128) (param $l v128) (param $b v128) (result v128)
    (local $t v128) (local $u v128)
    (local.set $t (i32x4.add (i32x4.shl (local.get $a) (i32.const 11)) (local.get $l)))
    (local.set $u (i32x4.add (i32x4.shl (local.get $b) (i32.const 11))
      (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $b) (local.get $b))))
    (i32x4.shr_s
      (i32x4.add (i32x4.add (local.get $t)
        (i8x16.shuffle 12 13 14 15 16 17 18 19 20 21 22 23 20 21 22 23 (local.get $t) (local.get $u)))
        (i32x4.splat (i32.const 2097152)))
      (i32.const 22)))

  ;; Vertical pass. For each of `outH` output rows yy: taps `taps[yy*ksize ..][0 .. count[yy])`
  ;; over the rows of `src` from byte offset `first[yy]` on, `stride` bytes apart; the row of
  ;; `stride` bytes goes to `dst + yy*stride`, 16 bytes at a time (the last chunk of a row spills
  ;; into the next row, which is written after it, and of the last row into the slack).
  (func (export "vertical")
    (param $src i32) (param $stride i32) (param $outH i32)
    (param $first i32) (param $count i32) (param $taps i32) (param $ksize i32) (param $dst i32)
    (local $yy i32) (local $i i32) (local $k0 i32) (local $end i32) (local $k i32) (local $p i32)
    (local $base i32) (local $out i32)
    (local $v v128) (local $lo v128) (local $hi v128) (local $w v128)
    (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128)
    (block $rowsDone
      (loop $rowLoop
        (br_if $rowsDone (i32.ge_u (local.get $yy) (local.get $outH)))
        (local.set $base (i32.add (local.get $src)
          (i32.load (i32.add (local.get $first) (i32.shl (local.get $yy) (i32.const 2))))))
        (local.set $k0 (i32.add (local.get $taps)
          (i32.shl (i32.mul (local.get $yy) (local.get $ksize)) (i32.const 2))))
        (local.set $end (i32.add (local.get $k0)
          (i32.shl (i32.load (i32.add (local.get $count) (i32.shl (local.get $yy) (i32.const 2))))
                   (i32.const 2))))
        (local.set $out (i32.add (local.get $dst) (i32.mul (local.get $yy) (local.get $stride))))
        (local.set $i (i32.const 0))
        (block $chunksDone
          (loop $chunkLoop
            (br_if $chunksDone (i32.ge_u (local.get $i) (local.get $stride)))
            (local.set $a0 (i32x4.splat (i32.const 2097152)))
            (local.set $a1 (local.get $a0))
            (local.set $a2 (local.get $a0))
            (local.set $a3 (local.get $a0))
            (local.set $p (i32.add (local.get $base) (local.get $i)))
            (local.set $k (local.get $k0))
            (block $tapsDone
              (loop $tapLoop
                (br_if $tapsDone (i32.ge_u (local.get $k) (local.get $end)))
                (local.set $v (v128.load (local.get $p)))
                (local.set $w (v128.load32_splat (local.get $k)))
                (local.set $lo (i16x8.extend_low_i8x16_u (local.get $v)))
                (local.set $hi (i16x8.extend_high_i8x16_u (local.get $v)))
                (local.set $a0 (i32x4.add (local.get $a0)
                  (i32x4.mul (i32x4.extend_low_i16x8_u (local.get $lo)) (local.get $w))))
                (local.set $a1 (i32x4.add (local.get $a1)
                  (i32x4.mul (i32x4.extend_high_i16x8_u (local.get $lo)) (local.get $w))))
                (local.set $a2 (i32x4.add (local.get $a2)
                  (i32x4.mul (i32x4.extend_low_i16x8_u (local.get $hi)) (local.get $w))))
                (local.set $a3 (i32x4.add (local.get $a3)
                  (i32x4.mul (i32x4.extend_high_i16x8_u (local.get $hi)) (local.get $w))))
                (local.set $p (i32.add (local.get $p) (local.get $stride)))
                (local.set $k (i32.add (local.get $k) (i32.const 4)))
                (br $tapLoop)))
            (v128.store (i32.add (local.get $out) (local.get $i))
              (i8x16.narrow_i16x8_u
                (i16x8.narrow_i32x4_s (i32x4.shr_s (local.get $a0) (i32.const 22))
                                      (i32x4.shr_s (local.get $a1) (i32.const 22)))
                (i16x8.narrow_i32x4_s (i32x4.shr_s (local.get $a2) (i32.const 22))
                                      (i32x4.shr_s (local.get $a3) (i32.const 22)))))
            (local.set $i (i32.add (local.get $i) (i32.const 16)))
            (br $chunkLoop)))
        (local.set $yy (i32.add (local.get $yy) (i32.const 1)))
        (br $rowLoop))))

  ;; HWC bytes (`plane` pixels from `src`) -> CHW float32 at `dst`: dst[c][i] = lut[c*256 + byte].
  (func (export "normalize") (param $src i32) (param $plane i32) (param $lut i32) (param $dst i32)
    (local $c i32) (local $i i32) (local $p i32) (local $l i32)
    (block $done
      (loop $chanLoop
        (br_if $done (i32.ge_u (local.get $c) (i32.const 3)))
        (local.set $l (i32.add (local.get $lut) (i32.shl (local.get $c) (i32.const 10))))
        (local.set $p (i32.add (local.get $src) (local.get $c)))
        (local.set $i (i32.const 0))
        (block $planeDone
          (loop $pixLoop
            (br_if $planeDone (i32.ge_u (local.get $i) (local.get $plane)))
            (f32.store (local.get $dst)
              (f32.load (i32.add (local.get $l) (i32.shl (i32.load8_u (local.get $p)) (i32.const 2)))))
            (local.set $p (i32.add (local.get $p) (i32.const 3)))
            (local.set $dst (i32.add (local.get $dst) (i32.const 4)))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br $pixLoop)))
        (local.set $c (i32.add (local.get $c) (i32.const 1)))
        (br $chanLoop))))
)
