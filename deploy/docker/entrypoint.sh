#!/bin/sh
# Entry point of the rdpo-services image: the first argument names what to run, the rest are its flags.
#   reward  [flags]                  services/reward/main.ts   (--help lists flags; REWARD_* env)
#   policy  [flags]                  services/policy/main.ts   (--model-dir /models/NAME ...)
#   trainer train|eval|serve [flags] services/trainer/main.ts
#   healthcheck HOST:PORT [SERVICE]  grpc.health.v1.Health/Check; exit 0 when SERVING
#   deno ARGS...                     the Deno binary itself
set -eu
cd /opt/rdpo
what="${1:-help}"
[ "$#" -gt 0 ] && shift
# --cached-only: everything the services import is in the image; never reach for a registry.
case "$what" in
  reward | policy | trainer) exec deno run --cached-only -A "services/$what/main.ts" "$@" ;;
  healthcheck) exec deno run --cached-only -A tools/healthcheck.ts "$@" ;;
  deno) exec deno "$@" ;;
  help | --help | -h)
    sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'
    ;;
  *)
    echo "entrypoint: unknown command \"$what\" (expected reward, policy, trainer, healthcheck or deno)" >&2
    exit 2
    ;;
esac
