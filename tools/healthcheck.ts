/**
 * gRPC health probe for containers and scripts (no grpcurl needed): calls grpc.health.v1.Health/Check
 * on ADDRESS for SERVICE (default "", the whole server) and exits 0 when the answer is SERVING, 1
 * otherwise (NOT_SERVING, an error, or no answer within --timeout-ms).
 *
 *   deno run -A tools/healthcheck.ts 127.0.0.1:50051 [rdpo.v1.RewardService] [--timeout-ms 3000]
 *
 * The container image runs it as `entrypoint.sh healthcheck ADDRESS` (deploy/docker/README.md).
 * Against a TLS server set RDPO_CLIENT_TLS_CA (and the client certificate under mTLS), see
 * lib/rpc/client_security.ts.
 */
import { Health, HealthCheckResponse_ServingStatus as Serving } from "../gen/grpc/health/v1/health_pb.ts";
import { createClient } from "../lib/rpc/client.ts";
import { clientSecurityFromEnv, openClientSecurity, withSecurity } from "../lib/rpc/client_security.ts";
import type { FlagSpecs } from "../lib/rpc/flags.ts";
import { type CommandSpec, runCommand } from "../lib/cli/command.ts";

/** Checks `service` on `address`; resolves to the serving status's name (e.g. "SERVING"). */
export async function checkHealth(address: string, service = "", timeoutMs = 3000): Promise<string> {
  // A TLS server needs a TLS probe: RDPO_CLIENT_TLS* as for every client (SECURITY.md).
  const security = openClientSecurity(clientSecurityFromEnv(), address);
  const client = createClient(Health, address, withSecurity({}, security));
  try {
    const response = await client.check({ service }, { timeoutMs });
    return Serving[response.status] ?? `status ${response.status}`;
  } finally {
    client.close();
    security.close();
  }
}

export const HEALTHCHECK_FLAGS = {
  timeoutMs: { type: "int", default: 3000, min: 1, description: "deadline of the Check call (ms)" },
} as const satisfies FlagSpecs;

export const HEALTHCHECK_COMMAND: CommandSpec<typeof HEALTHCHECK_FLAGS> = {
  name: "tools/healthcheck.ts",
  summary: "gRPC health probe: exit 0 when ADDRESS answers SERVING for SERVICE (default: the server)",
  flags: HEALTHCHECK_FLAGS,
  args: "<address> [service]",
  examples: [
    "deno run -A tools/healthcheck.ts 127.0.0.1:50051",
    "deno run -A tools/healthcheck.ts 127.0.0.1:50052 rdpo.v1.PolicyService --timeout-ms 1000",
  ],
  async run(values, [address, service = ""]) {
    try {
      const status = await checkHealth(address, service, values.timeoutMs);
      console.log(`${address} ${service || "(server)"}: ${status}`);
      Deno.exit(status === "SERVING" ? 0 : 1);
    } catch (e) {
      console.error(`${address} ${service || "(server)"}: ${(e as Error).message}`);
      Deno.exit(1);
    }
  },
};

if (import.meta.main) await runCommand(HEALTHCHECK_COMMAND);
