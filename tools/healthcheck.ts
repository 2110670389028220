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
import { FlagError, parseFlags } from "../lib/rpc/flags.ts";

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

if (import.meta.main) {
  let values: { timeoutMs: number };
  let positionals: string[];
  try {
    ({ values, positionals } = parseFlags(Deno.args, {
      timeoutMs: { type: "int", default: 3000, min: 1, description: "deadline of the Check call" },
    }));
  } catch (e) {
    if (!(e instanceof FlagError)) throw e;
    console.error(`healthcheck: ${e.message}`);
    Deno.exit(2);
  }
  const [address, service = ""] = positionals;
  if (!address || positionals.length > 2) {
    console.error("usage: healthcheck.ts HOST:PORT [SERVICE] [--timeout-ms N]");
    Deno.exit(2);
  }
  try {
    const status = await checkHealth(address, service, values.timeoutMs);
    console.log(`${address} ${service || "(server)"}: ${status}`);
    Deno.exit(status === "SERVING" ? 0 : 1);
  } catch (e) {
    console.error(`${address} ${service || "(server)"}: ${(e as Error).message}`);
    Deno.exit(1);
  }
}
