#!/usr/bin/env bash
# One-shot GPU check of issue 19: the sd15 table (bench/gpu/sd15_main.ts) on the lent GPU through
# WebGPU (Vulkan), and the same UNet config in PyTorch eager (fp32, bf16; diffusers' own
# UNet2DConditionModel) for the ratio column, in ONE call of the device machine (< 8 min wall).
#
#   bash bench/gpu/run.sh --prepare   here: fills .gpu/ (git-ignored): Deno (xz), the Vulkan loader
#                                     .debs, diffusers' source (tar.xz), the sd15 bundle, the CLIP vocab
#   bash bench/gpu/run.sh --check     here: only the checks of --dry-run (files, sizes), no table
#   bash bench/gpu/run.sh --dry-run   here: checks .gpu/ is complete and what travels fits 64 MiB, then
#                                     runs the bundled table at --quick on the local adapter (lavapipe)
#   bash bench/gpu/run.sh             on the GPU machine (device run, carry [".gpu"]): writes
#                                     $OUT/gpu-<date>.md (commit it as bench/results/gpu-<date>.md)
#
# Environment: DIFFUSERS_GIT (a git dir of diffusers, default the fetched mirror), DENO (default: deno
# on PATH), SD15_ITERS (timed repetitions on the GPU, default 2).
set -euo pipefail
cd "$(dirname "$0")/../.."
G=.gpu
MODE=${1:-run}
DATE=$(date -u +%Y-%m-%d)
need=("$G/deno.xz" "$G/sd15bench.js" "$G/diffusers-src.tar.xz" "$G/unet_config.json"
  "$G/shared/fixtures/clip-bpe/bpe_simple_vocab_16e6.txt.gz" "$G/gl/libvulkan1.deb")

prepare() {
  local deno=${DENO:-$(command -v deno)} git=${DIFFUSERS_GIT:-/work/.mirror/huggingface+diffusers/repo}
  mkdir -p "$G/gl" "$G/shared/fixtures/clip-bpe"
  [ -s "$G/deno.xz" ] || xz -T2 -6 -c "$(readlink -f "$deno")" >"$G/deno.xz"
  "$deno" bundle --platform deno -o "$G/sd15bench.js" bench/gpu/sd15_main.ts
  git --git-dir="$git" archive --format=tar HEAD src/diffusers | xz -T2 -6 >"$G/diffusers-src.tar.xz"
  git --git-dir="$git" log -1 --format='%H %cd' >"$G/diffusers-commit.txt"
  "$deno" eval 'import { SD15_UNET_CONFIG as c } from "./services/policy/model/sd15/configs.ts";
    console.log(JSON.stringify(c, null, 2));' >"$G/unet_config.json"
  cp "${RDPO_SHARED_DIR:-../shared}/fixtures/clip-bpe/bpe_simple_vocab_16e6.txt.gz" "$G/shared/fixtures/clip-bpe/"
  if [ ! -s "$G/gl/libvulkan1.deb" ]; then
    # The device README's recipe: amd64 package lists of our own, the loader downloaded, not installed.
    local o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
    mkdir -p /tmp/amd64/partial
    apt-get $o update -qq
    (cd "$G/gl" && apt-get $o download libvulkan1 && mv libvulkan1_*.deb libvulkan1.deb)
  fi
  ls -la "$G" "$G/gl"
}

check() {
  local ok=1
  for f in "${need[@]}"; do [ -s "$f" ] || { echo "missing: $f (run --prepare)"; ok=0; }; done
  [ $ok = 1 ] || exit 2
  xz -t "$G/deno.xz" "$G/diffusers-src.tar.xz"
  # (the listing is read whole: grep -q closing the pipe early would fail the pipeline)
  tar tJf "$G/diffusers-src.tar.xz" | grep -c 'src/diffusers/models/unets/unet_2d_condition.py$' >/dev/null ||
    { echo "diffusers archive lacks unet_2d_condition.py"; exit 2; }
  python3 -m py_compile bench/gpu/torch_unet.py
  # What travels: tracked + untracked-not-ignored files, and the carried .gpu/ (limit 64 MiB).
  local tree carried
  tree=$(git ls-files -z -co --exclude-standard | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1)
  carried=$(du -sb "$G" | cut -f1)
  echo "travels: tree $((tree / 1048576)) MiB + .gpu $((carried / 1048576)) MiB = $(((tree + carried) / 1048576)) MiB (limit 64)"
  [ $((tree + carried)) -lt $((64 * 1048576)) ] || { echo "over 64 MiB"; exit 2; }
}

case "$MODE" in
--prepare) prepare; check ;;
--check) check ;;
--dry-run)
  check
  # The same environment as the device run: the bundle finds the CLIP vocabulary in .gpu/shared.
  RDPO_SHARED_DIR="$PWD/$G/shared" timeout 1800 "${DENO:-deno}" run -A "$G/sd15bench.js" --quick --out .tmp/gpu-dry-run.md
  echo "dry run table: .tmp/gpu-dry-run.md" ;;
run)
  check
  T0=$(date +%s)
  OUT=${OUT:-bench/results}
  mkdir -p "$OUT" /tmp/gpu
  for f in "$G"/gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
  icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  [ -f "$icd" ] && export VK_DRIVER_FILES=$icd
  xz -dc "$G/deno.xz" >/tmp/gpu/deno && chmod +x /tmp/gpu/deno
  tar xJf "$G/diffusers-src.tar.xz" -C /tmp/gpu
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee /tmp/gpu/nvidia-smi.txt || true
  echo "== PyTorch eager (fp32, bf16) $(($(date +%s) - T0)) s"
  PYTHONPATH=/tmp/gpu/src PYTHONUNBUFFERED=1 timeout 200 python3 bench/gpu/torch_unet.py \
    --config "$G/unet_config.json" --iters 5 | tee /tmp/gpu/torch.json || echo '{}' >/tmp/gpu/torch.json
  echo "== tfjs webgpu sd15 table $(($(date +%s) - T0)) s"
  # --require-gpu: no timing on a fallback adapter (llvmpipe, SwiftShader).
  RDPO_SHARED_DIR="$PWD/$G/shared" timeout 300 /tmp/gpu/deno run -A "$G/sd15bench.js" --require-gpu \
    --iters "${SD15_ITERS:-2}" --torch-json /tmp/gpu/torch.json --out "$OUT/gpu-$DATE.md" 2>&1 | tee "$OUT/gpu-$DATE.log"
  echo "== done in $(($(date +%s) - T0)) s: $OUT/gpu-$DATE.md" ;;
*) echo "usage: bash bench/gpu/run.sh [--prepare | --dry-run]"; exit 2 ;;
esac
