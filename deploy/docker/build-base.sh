#!/usr/bin/env bash
# Makes the base image offline: a minimal Debian root filesystem from debootstrap (Debian's own
# package mirror, the only thing it downloads), imported as a Docker image. No registry is involved.
#
#   deploy/docker/build-base.sh [IMAGE]         IMAGE defaults to rdpo-base:bookworm
#
# Env: RDPO_BASE_SUITE (bookworm), RDPO_BASE_MIRROR (the first deb URI of this machine's apt sources,
# else http://deb.debian.org/debian), RDPO_BASE_FORCE=1 rebuilds an image that already exists.
# Needs root (debootstrap), debootstrap and a Docker daemon. Any other glibc-based image works as
# well: pass it to build.sh as BASE_IMAGE instead.
set -euo pipefail
image="${1:-rdpo-base:bookworm}"
suite="${RDPO_BASE_SUITE:-bookworm}"
log() { printf '[build-base] %s\n' "$*" >&2; }

if [ "${RDPO_BASE_FORCE:-0}" != 1 ] && docker image inspect "$image" >/dev/null 2>&1; then
  log "$image exists (RDPO_BASE_FORCE=1 rebuilds it)"
  exit 0
fi
command -v debootstrap >/dev/null || { log "debootstrap not found (apt-get install debootstrap)"; exit 1; }
[ "$(id -u)" = 0 ] || { log "debootstrap needs root"; exit 1; }

mirror="${RDPO_BASE_MIRROR:-}"
if [ -z "$mirror" ]; then
  mirror=$(sed -n 's/^URIs: *\([^ ]*debian\)$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1 || true)
  [ -n "$mirror" ] || mirror=http://deb.debian.org/debian
fi

rootfs=$(mktemp -d /tmp/rdpo-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
# fontconfig-config + fonts-dejavu-core: sharp's bundled libvips renders the report grid's SVG captions
# through fontconfig; without a config and a font it prints "Fontconfig error" and draws no text.
include=fontconfig-config,fonts-dejavu-core
log "debootstrap --variant=minbase --include=$include $suite from $mirror"
debootstrap --variant=minbase --include="$include" "$suite" "$rootfs" "$mirror" >"$rootfs.log" 2>&1 || {
  tail -20 "$rootfs.log" >&2
  rm -f "$rootfs.log"
  exit 1
}
rm -f "$rootfs.log"
# Package caches and lists are not needed at run time.
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
log "docker import -> $image"
tar -C "$rootfs" -c . | docker import - "$image" >/dev/null
log "done: $(docker image inspect --format '{{.Size}}' "$image") bytes"
