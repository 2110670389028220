/**
 * Docker environment for test/container_test.ts: decides whether the container test can run here
 * (and says why not), makes the base image when it is missing, and builds the services' image with
 * deploy/docker/build.sh. Everything goes through the `docker` CLI with a time limit, so a broken or
 * absent daemon costs seconds and leaves no handle open in the test process.
 */
import { join } from "node:path";
import { repoRoot } from "../../lib/testing/fixtures.ts";

/** Base image of deploy/docker/Dockerfile (`RDPO_BASE_IMAGE` overrides it). */
export const BASE_IMAGE = Deno.env.get("RDPO_BASE_IMAGE") ?? "rdpo-base:bookworm";
/** Tag the test builds the services' image under (`RDPO_SERVICES_IMAGE` overrides it). */
export const SERVICES_IMAGE = Deno.env.get("RDPO_SERVICES_IMAGE") ?? "rdpo-services:test";

export interface CommandResult {
  code: number;
  /** stdout and stderr, in that order. */
  output: string;
  ms: number;
}

/** Runs a command with a time limit; a missing program or a timeout is a result, not an exception. */
export async function run(
  program: string,
  args: string[],
  { timeoutMs, env }: { timeoutMs: number; env?: Record<string, string> },
): Promise<CommandResult> {
  const started = performance.now();
  try {
    const out = await new Deno.Command(program, {
      args,
      env,
      cwd: repoRoot,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(timeoutMs),
    }).output();
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    const timedOut = out.signal !== null && performance.now() - started >= timeoutMs;
    return {
      code: out.success ? 0 : out.code || 1,
      output: timedOut ? `${text}\n(killed after ${timeoutMs} ms)` : text,
      ms: performance.now() - started,
    };
  } catch (e) {
    return { code: 127, output: `${program}: ${(e as Error).message}`, ms: performance.now() - started };
  }
}

/** Free ports on 127.0.0.1, distinct (all listeners are open at once while choosing). */
export function freePorts(n: number): number[] {
  const listeners = Array.from({ length: n }, () => Deno.listen({ hostname: "127.0.0.1", port: 0 }));
  const ports = listeners.map((l) => (l.addr as Deno.NetAddr).port);
  for (const l of listeners) l.close();
  return ports;
}

/** `docker ARGS` with a time limit. */
export function docker(args: string[], timeoutMs = 60_000): Promise<CommandResult> {
  return run("docker", args, { timeoutMs });
}

/** The last lines of a command's output, on one line (skip messages stay one line in CI logs). */
function tail(text: string, lines: number): string {
  return text.trim().split("\n").slice(-lines).join(" | ");
}

/** Seconds the base image's debootstrap + import may take before the test gives up (and skips). */
const BASE_BUILD_TIMEOUT_MS = 600_000;

/**
 * Why the container test cannot run here, or null when it can: RDPO_SKIP_CONTAINER_TESTS=1, no
 * docker CLI, no reachable daemon, a base image that is missing and cannot be built (no root, no
 * debootstrap, no Debian mirror), or a daemon that cannot start a host-network container. Builds the
 * base image with deploy/docker/build-base.sh when it is missing (about a minute).
 */
export async function containerSkipReason(): Promise<string | null> {
  if (Deno.env.get("RDPO_SKIP_CONTAINER_TESTS") === "1") return "RDPO_SKIP_CONTAINER_TESTS=1";
  const info = await docker(["info", "--format", "{{.ServerVersion}}"], 20_000);
  if (info.code === 127) return `no docker CLI (${tail(info.output, 1)})`;
  if (info.code !== 0) return `no Docker daemon reachable: ${tail(info.output, 3)}`;
  if ((await docker(["image", "inspect", BASE_IMAGE], 20_000)).code !== 0) {
    const built = await run("bash", [join(repoRoot, "deploy/docker/build-base.sh"), BASE_IMAGE], {
      timeoutMs: BASE_BUILD_TIMEOUT_MS,
    });
    if (built.code !== 0) {
      return `base image ${BASE_IMAGE} is missing and could not be built ` +
        `(deploy/docker/build-base.sh): ${tail(built.output, 5)}`;
    }
    console.log(`container test: built ${BASE_IMAGE} in ${(built.ms / 1000).toFixed(1)} s`);
  }
  const probe = await docker(
    ["run", "--rm", "--network", "host", "--entrypoint", "true", BASE_IMAGE],
    60_000,
  );
  if (probe.code !== 0) {
    return `the Docker daemon cannot run a host-network container: ${tail(probe.output, 3)}`;
  }
  return null;
}

/** Builds the services' image from this checkout with the Deno binary running the test. */
export async function buildServicesImage(tag = SERVICES_IMAGE): Promise<CommandResult> {
  return await run("bash", [join(repoRoot, "deploy/docker/build.sh"), tag], {
    timeoutMs: 600_000,
    env: { DENO_BIN: Deno.execPath(), BASE_IMAGE },
  });
}

/** `docker rm -f` for containers that may or may not exist (the test's last line of cleanup). */
export async function removeContainers(names: string[]): Promise<void> {
  if (names.length > 0) await docker(["rm", "-f", ...names], 60_000);
}
