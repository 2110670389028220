/**
 * The trainer's view of the policy and reward services: typed gRPC clients (lib/rpc) wrapped with
 * per-RPC deadlines, retries on UNAVAILABLE / DEADLINE_EXCEEDED (retry.ts), and timing. Each call's
 * wall time is split into server compute (the `rdpo-server-ms` trailer every lib/rpc server sends)
 * and the rest, which is what the wire (encode, transfer, decode) cost; the loop reports both.
 */
import type { Metadata } from "@grpc/grpc-js";
import { PolicyService } from "../../gen/rdpo/v1/policy_pb.ts";
import { RewardService } from "../../gen/rdpo/v1/reward_pb.ts";
import { type ClientOf, createClient } from "../../lib/rpc/client.ts";
import { createSessionClient } from "../../lib/rpc/session_client.ts";
import { clientSecurityFromEnv, openClientSecurity, withSecurity } from "../../lib/rpc/client_security.ts";
import { SERVER_PRE_TIME_TRAILER, SERVER_TIME_TRAILER } from "../../lib/rpc/server.ts";
import { clientTelemetry } from "../../lib/telemetry/grpc.ts";
import type { WireByRpc } from "./metrics.ts";
import { deadlineMs, type RpcName, type RunConfig } from "./config.ts";
import { rewardChannelOptions } from "./replicas.ts";
import { retryPolicyFromConfig, withRetry } from "./retry.ts";

export type PolicyClient = ClientOf<typeof PolicyService>;
export type RewardClient = ClientOf<typeof RewardService>;

/** What `CallClock.take()` hands out: the calls since the previous take. */
export interface CallTotals {
  calls: number;
  totalMs: number;
  serverMs: number;
  wireMs: number;
  retries: number;
  bytesSent: number;
  bytesReceived: number;
  /** Calls that went as Session messages / as their own unary RPC. */
  streamCalls: number;
  unaryCalls: number;
  /** The same per RPC name (deadline key), with the wire time's measured parts. */
  byRpc: Record<string, RpcWireTotals>;
}

/**
 * One RPC name's share of a step's wire time (issue 21). `wireMs` = wall - server handler;
 * of it, `encodeMs` / `decodeMs` are this client's protobuf work, `serverPreMs` the server's
 * decode + dispatch before its handler (SERVER_PRE_TIME_TRAILER); the rest is transport
 * (grpc-js on both ends, HTTP/2 framing, loopback, event-loop turns).
 */
export interface RpcWireTotals {
  calls: number;
  wallMs: number;
  serverMs: number;
  wireMs: number;
  encodeMs: number;
  decodeMs: number;
  serverPreMs: number;
  bytesSent: number;
  bytesReceived: number;
}

/** Per-RPC totals as a step record's `wire_by_rpc` (ms rounded to microseconds). */
export function wireByRpc(byRpc: Record<string, RpcWireTotals>): Record<string, WireByRpc> {
  const ms = (v: number) => Number(v.toFixed(3));
  return Object.fromEntries(
    Object.entries(byRpc).map(([name, r]) => [name, {
      calls: r.calls,
      wall_ms: ms(r.wallMs),
      server_ms: ms(r.serverMs),
      wire_ms: ms(r.wireMs),
      encode_ms: ms(r.encodeMs),
      decode_ms: ms(r.decodeMs),
      server_pre_ms: ms(r.serverPreMs),
      bytes_sent: r.bytesSent,
      bytes_received: r.bytesReceived,
    }]),
  );
}

function emptyRpcTotals(): RpcWireTotals {
  return {
    calls: 0,
    wallMs: 0,
    serverMs: 0,
    wireMs: 0,
    encodeMs: 0,
    decodeMs: 0,
    serverPreMs: 0,
    bytesSent: 0,
    bytesReceived: 0,
  };
}

/** Accumulated timing and message sizes of the calls made since the last `take()`. */
export class CallClock {
  calls = 0;
  totalMs = 0;
  serverMs = 0;
  retries = 0;
  /** Encoded message bytes sent and received by the calls (requests, responses). */
  bytesSent = 0;
  bytesReceived = 0;
  streamCalls = 0;
  unaryCalls = 0;
  byRpc: Record<string, RpcWireTotals> = {};

  /** The totals of RPC `name` since the last take (created empty). */
  rpc(name: string): RpcWireTotals {
    return (this.byRpc[name] ??= emptyRpcTotals());
  }

  /** Wire cost: wall time not spent computing on the server. */
  get wireMs(): number {
    return Math.max(0, this.totalMs - this.serverMs);
  }

  take(): CallTotals {
    const r = {
      calls: this.calls,
      totalMs: this.totalMs,
      serverMs: this.serverMs,
      wireMs: this.wireMs,
      retries: this.retries,
      bytesSent: this.bytesSent,
      bytesReceived: this.bytesReceived,
      streamCalls: this.streamCalls,
      unaryCalls: this.unaryCalls,
      byRpc: this.byRpc,
    };
    this.byRpc = {};
    this.calls =
      this.totalMs =
      this.serverMs =
      this.retries =
      this.bytesSent =
      this.bytesReceived =
      this.streamCalls =
      this.unaryCalls =
        0;
    return r;
  }
}

export interface TrainerServices {
  policy: PolicyClient;
  reward: RewardClient;
  clock: CallClock;
  /** Runs one RPC with its deadline and the retry policy; `name` selects the deadline key. */
  call<T>(
    name: RpcName,
    fn: (options: {
      timeoutMs: number;
      onTrailer: (m: Metadata) => void;
      onMessageBytes: (sent: number, received: number) => void;
      onCodecMs: (encodeMs: number, decodeMs: number) => void;
      onTransport: (transport: "unary" | "stream") => void;
    }) => Promise<T>,
  ): Promise<T>;
  close(): void;
}

export function connectServices(
  config: RunConfig,
  options: { onRetry?: (what: string, attempt: number, error: unknown) => void } = {},
): TrainerServices {
  const clientOptions = {
    maxReceiveMessageBytes: config.rpc.max_message_bytes,
    maxSendMessageBytes: config.rpc.max_message_bytes,
    // A CLIENT span per call, its traceparent in the metadata (the step span is its parent).
    onCall: [clientTelemetry()],
  };
  // TLS and bearer tokens from RDPO_[POLICY_|REWARD_]CLIENT_* (lib/rpc/client_security.ts).
  // With several replicas (replicas.ts) this client talks to the first (evaluation, GetInfo); their
  // adapters are kept identical.
  const p = config.services.policy;
  const policyAddress = Array.isArray(p) ? p[0] : p;
  const policySecurity = openClientSecurity(clientSecurityFromEnv("POLICY"), policyAddress);
  const rewardSecurity = openClientSecurity(clientSecurityFromEnv("REWARD"), config.services.reward);
  const unaryPolicy = createClient(PolicyService, policyAddress, withSecurity(clientOptions, policySecurity));
  const unaryReward = createClient(
    RewardService,
    config.services.reward,
    withSecurity(
      { ...clientOptions, grpcOptions: rewardChannelOptions(config.services.reward) },
      rewardSecurity,
    ),
  );
  // One long-lived Session stream per service carries the unary calls (issue 21: ~2 ms of fixed
  // transport saved per call); results are the same messages, so runs are bit-identical either way.
  const stream = config.rpc.session_stream;
  const policy = stream ? createSessionClient(PolicyService, unaryPolicy) : unaryPolicy;
  const reward = stream ? createSessionClient(RewardService, unaryReward) : unaryReward;
  const clock = new CallClock();
  const policyRetry = retryPolicyFromConfig(config.rpc.retry);
  return {
    policy,
    reward,
    clock,
    async call(name, fn) {
      const timeoutMs = deadlineMs(config, name);
      return await withRetry(
        async () => {
          let serverMs = 0;
          const rpc = clock.rpc(name);
          const t0 = performance.now();
          try {
            return await fn({
              timeoutMs,
              onTrailer: (m) => {
                const v = Number(m.get(SERVER_TIME_TRAILER)[0]);
                if (Number.isFinite(v)) serverMs = v;
                const pre = Number(m.get(SERVER_PRE_TIME_TRAILER)[0]);
                if (Number.isFinite(pre)) rpc.serverPreMs += pre;
              },
              onMessageBytes: (sent, received) => {
                clock.bytesSent += sent;
                clock.bytesReceived += received;
                rpc.bytesSent += sent;
                rpc.bytesReceived += received;
              },
              onCodecMs: (encodeMs, decodeMs) => {
                rpc.encodeMs += encodeMs;
                rpc.decodeMs += decodeMs;
              },
              onTransport: (transport) => {
                if (transport === "stream") clock.streamCalls += 1;
                else clock.unaryCalls += 1;
              },
            });
          } finally {
            const wallMs = performance.now() - t0;
            clock.calls += 1;
            clock.totalMs += wallMs;
            clock.serverMs += serverMs;
            rpc.calls += 1;
            rpc.wallMs += wallMs;
            rpc.serverMs += serverMs;
            rpc.wireMs += Math.max(0, wallMs - serverMs);
          }
        },
        policyRetry,
        {
          onRetry: (e) => {
            clock.retries += 1;
            options.onRetry?.(name, e.attempt, e.error);
          },
        },
      );
    },
    close() {
      policy.close();
      reward.close();
      policySecurity.close();
      rewardSecurity.close();
    },
  };
}
