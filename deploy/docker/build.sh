#!/usr/bin/env bash
# Builds the services' image from this checkout without any registry:
#
#   deploy/docker/build.sh [TAG]                 TAG defaults to rdpo-services:dev
#
# Env: BASE_IMAGE (default rdpo-base:bookworm, see build-base.sh; any glibc-based image works),
# DENO_BIN (the Deno binary to put in the image; default: `deno` on PATH, else the one `npx -y
# deno@2.9.6` cached under ~/.npm/_npx). The context is streamed as a tar holding only what the
# services run, so no .dockerignore is involved: sources, generated code and node_modules, without
# other platforms' native binaries and the buf compiler (used by `deno task gen` only).
set -euo pipefail
tag="${1:-rdpo-services:dev}"
base="${BASE_IMAGE:-rdpo-base:bookworm}"
repo=$(cd "$(dirname "$0")/../.." && pwd)
log() { printf '[build] %s\n' "$*" >&2; }

deno_bin="${DENO_BIN:-}"
if [ -z "$deno_bin" ]; then
  deno_bin=$(command -v deno || true)
  # npm's `deno` launcher is a Node script; the binary is the platform package's file.
  if [ -z "$deno_bin" ] || ! head -c 4 "$deno_bin" | grep -q 'ELF'; then
    deno_bin=$(ls -t "$HOME"/.npm/_npx/*/node_modules/@deno/linux-x64-glibc/deno 2>/dev/null | head -1 || true)
  fi
fi
[ -n "$deno_bin" ] && [ -x "$deno_bin" ] || { log "no Deno binary found: set DENO_BIN"; exit 1; }
deno_bin=$(readlink -f "$deno_bin")
log "deno: $deno_bin ($("$deno_bin" --version | head -1))"
# node_modules must hold every package the services import: the image build cannot download.
(cd "$repo" && "$deno_bin" install >/dev/null 2>&1) || log "deno install failed; using node_modules as it is"
[ -d "$repo/node_modules/.deno" ] || { log "no node_modules: run \`deno install\` first"; exit 1; }

nm=./node_modules/.deno
excludes=(
  --exclude="$nm/onnxruntime-node@*/node_modules/onnxruntime-node/bin/napi-v*/darwin"
  --exclude="$nm/onnxruntime-node@*/node_modules/onnxruntime-node/bin/napi-v*/win32"
  --exclude="$nm/onnxruntime-node@*/node_modules/onnxruntime-node/bin/napi-v*/linux/arm64"
  --exclude="$nm/@bufbuild+buf-linux-x64@*/node_modules/@bufbuild/buf-linux-x64/bin"
  --exclude="$nm/@img+sharp-libvips-linuxmusl-x64@*/node_modules/@img/sharp-libvips-linuxmusl-x64/lib"
  # Rewritten by every Deno process that sets up node_modules; `deno cache` in the build makes its own.
  --exclude="$nm/.setup-cache.bin"
  --exclude="*_test.ts"
  --exclude="*.log"
)
# The Dockerfile COPYs exactly these paths; the Deno binary goes in as ./deno.
paths=(./deno.json ./deno.lock ./proto ./gen ./lib ./services ./tools ./node_modules ./deploy/docker ./models/tiny)
# Deno processes running meanwhile (a parallel test run) touch node_modules/.deno; GNU tar reports a
# folder that changed while it was read with exit status 1, harmless here. Any other failure is not.
context() {
  tar -C "$repo" "${excludes[@]}" --warning=no-file-changed -cf - "${paths[@]}" \
    -C "$(dirname "$deno_bin")" --transform="s|^$(basename "$deno_bin")\$|deno|" "$(basename "$deno_bin")" \
    || [ $? -eq 1 ]
}
log "building $tag from $base"
context | DOCKER_BUILDKIT=0 docker build --force-rm --network none --build-arg "BASE_IMAGE=$base" \
  -f deploy/docker/Dockerfile -t "$tag" -
log "done: $tag"
