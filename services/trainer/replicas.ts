/**
 * The policy replicas of a data-parallel run (issue 18), and the per-call balancing of reward
 * traffic. Discovery is Kubernetes' and gRPC's, none of our own: `services.policy` is
 *   - one "host:port": one replica, the single-replica path exactly as before (not data-parallel);
 *   - a list of addresses (a StatefulSet's per-pod names, or loopback ports in tests);
 *   - "dns:///name:port": the name's A records (a headless Service), resolved at start and again on
 *     every reconnect (a restarted pod may come back with another IP).
 * The replica order is the list order (or the sorted A records); results do not depend on it,
 * because sharding and reduction are defined over the global batch (data_parallel.ts).
 */
import { lookup } from "node:dns/promises";
import { PolicyService } from "../../gen/rdpo/v1/policy_pb.ts";
import { InvalidArgumentError } from "../../lib/errors.ts";
import { createClient } from "../../lib/rpc/client.ts";
import {
  type ClientSecurity,
  clientSecurityFromEnv,
  openClientSecurity,
  withSecurity,
} from "../../lib/rpc/client_security.ts";
import { clientTelemetry } from "../../lib/telemetry/grpc.ts";
import type { RunConfig } from "./config.ts";
import type { PolicyClient } from "./services.ts";

const DNS_PREFIX = "dns:///";

/** True when `services.policy` names replicas (a list or a DNS name) rather than one address. */
export function isDataParallel(policy: RunConfig["services"]["policy"]): boolean {
  return Array.isArray(policy) || policy.startsWith(DNS_PREFIX);
}

/** "dns:///name:port" -> { host, port }; null for other targets. */
export function parseDnsTarget(target: string): { host: string; port: string } | null {
  if (!target.startsWith(DNS_PREFIX)) return null;
  const rest = target.slice(DNS_PREFIX.length);
  const i = rest.lastIndexOf(":");
  if (i <= 0 || !/^\d{1,5}$/.test(rest.slice(i + 1))) {
    throw new InvalidArgumentError(
      "services.policy",
      `expected "dns:///name:port", got ${JSON.stringify(target)}`,
    );
  }
  return { host: rest.slice(0, i), port: rest.slice(i + 1) };
}

/**
 * The replica addresses `services.policy` names now. A DNS name goes through the system resolver
 * (getaddrinfo: /etc/hosts, then the cluster DNS), IPv4 A records, sorted; none is an error naming
 * the field.
 */
export async function resolvePolicyReplicas(policy: RunConfig["services"]["policy"]): Promise<string[]> {
  if (Array.isArray(policy)) return [...policy];
  const dns = parseDnsTarget(policy);
  if (!dns) return [policy];
  let records: { address: string }[];
  try {
    records = await lookup(dns.host, { all: true, family: 4 });
  } catch (e) {
    throw new InvalidArgumentError(
      "services.policy",
      `${policy}: ${dns.host} does not resolve (${(e as Error).message})`,
    );
  }
  const ips = [...new Set(records.map((r) => r.address))].sort();
  if (ips.length === 0) throw new InvalidArgumentError("services.policy", `${policy}: no A records`);
  return ips.map((ip) => `${ip}:${dns.port}`);
}

/** One policy replica: its index, address and client. */
export interface Replica {
  index: number;
  address: string;
  client: PolicyClient;
}

/** The replica clients of a run; `reconnect()` resolves `services.policy` again. */
export class ReplicaSet {
  #replicas: Replica[] = [];
  #security: ClientSecurity[] = [];

  constructor(readonly config: RunConfig) {}

  get replicas(): readonly Replica[] {
    return this.#replicas;
  }

  get size(): number {
    return this.#replicas.length;
  }

  /** "replica 2 (127.0.0.1:50053)": how errors and logs name a replica. */
  describe(index: number): string {
    return `replica ${index} (${this.#replicas[index]?.address ?? "?"})`;
  }

  async connect(): Promise<this> {
    const addresses = await resolvePolicyReplicas(this.config.services.policy);
    this.close();
    // TLS and tokens as for the single policy client (RDPO_POLICY_CLIENT_*, services.ts).
    const securityConfig = clientSecurityFromEnv("POLICY");
    this.#replicas = addresses.map((address, index) => {
      const security = openClientSecurity(securityConfig, address);
      this.#security.push(security);
      return {
        index,
        address,
        client: createClient(
          PolicyService,
          address,
          withSecurity({
            maxReceiveMessageBytes: this.config.rpc.max_message_bytes,
            maxSendMessageBytes: this.config.rpc.max_message_bytes,
            onCall: [clientTelemetry()],
          }, security),
        ),
      };
    });
    return this;
  }

  close(): void {
    for (const r of this.#replicas) r.client.close();
    for (const s of this.#security) s.close();
    this.#replicas = [];
    this.#security = [];
  }
}

/**
 * grpc-js channel options for the reward client: with "dns:///name:port" (a headless Service) calls
 * are spread over all A records with round_robin, per call; a plain ClusterIP address would pin the
 * one long-lived HTTP/2 connection to one pod. "ipv4:a:p,b:q" lists get the same. Other targets
 * keep grpc-js' defaults.
 */
export function rewardChannelOptions(address: string): Record<string, string> {
  if (!/^(?:dns:\/\/\/|ipv4:|ipv6:)/.test(address)) return {};
  return { "grpc.service_config": JSON.stringify({ loadBalancingConfig: [{ round_robin: {} }] }) };
}
