/**
 * The gRPC adapter of rdpo.v1.RewardService over lib/rpc: converts proto messages to the core's
 * plain types and back, and guards the management RPCs with the admin token (admin_auth.ts).
 * Status codes come from the domain errors the core throws (lib/rpc/status.ts maps them).
 */
import { type ScorerInfo, ScorerInfoSchema, ScorerState } from "../../gen/rdpo/v1/reward_pb.ts";
import { RewardService } from "../../gen/rdpo/v1/reward_pb.ts";
import { create } from "@bufbuild/protobuf";
import type { RpcServer } from "../../lib/rpc/server.ts";
import type { ImplOf } from "../../lib/rpc/types.ts";
import { checkAdminToken } from "./admin_auth.ts";
import type { RewardCore } from "./core.ts";
import type { ScorerState as CoreState, ScorerStatus } from "./registry.ts";

export interface RewardServiceOptions {
  /** When set, LoadScorer/UnloadScorer/SetAlias need `authorization: Bearer <token>`. */
  adminToken?: string;
}

const STATES: Record<CoreState, ScorerState> = {
  LOADING: ScorerState.LOADING,
  READY: ScorerState.READY,
  DRAINING: ScorerState.DRAINING,
  FAILED: ScorerState.FAILED,
};

export function toScorerInfo(s: ScorerStatus): ScorerInfo {
  return create(ScorerInfoSchema, {
    name: s.name,
    version: s.version,
    kind: s.kind,
    state: STATES[s.state],
    loadedAtMs: BigInt(Math.round(s.loadedAtMs)),
    requestCount: BigInt(s.requestCount),
    imageCount: BigInt(s.imageCount),
    errorCount: BigInt(s.errorCount),
    meanLatencyMs: s.meanLatencyMs,
    p99LatencyMs: s.p99LatencyMs,
    inFlight: s.inFlight,
    batching: { maxBatch: s.batching.maxBatch, maxQueueDelayMs: s.batching.maxQueueDelayMs },
    needsPrompts: s.needsPrompts,
    error: s.error,
  });
}

/** Handlers of rdpo.v1.RewardService over `core`. */
export function rewardServiceImpl(
  core: RewardCore,
  options: RewardServiceOptions = {},
): ImplOf<typeof RewardService> {
  const admin = (ctx: { header(key: string): string | undefined; method: string }) =>
    checkAdminToken(options.adminToken, ctx.header("authorization"), ctx.method);
  return {
    async score(request, ctx) {
      const result = await core.score(
        {
          scorer: request.scorer,
          images: request.images.map((im) => ({
            width: im.width,
            height: im.height,
            channels: im.channels,
            data: im.data,
          })),
          prompts: request.prompts,
        },
        ctx.signal,
      );
      return {
        scores: Array.from(result.scores),
        scorerName: result.scorerName,
        version: result.version,
        queueMs: result.queueMs,
        inferenceMs: result.inferenceMs,
        batchSize: result.batchSize,
      };
    },
    async loadScorer(request, ctx) {
      admin(ctx);
      const status = await core.loadScorer({
        name: request.name,
        version: request.version,
        bundle: request.bundle,
        kind: request.kind,
        batching: request.batching &&
          { maxBatch: request.batching.maxBatch, maxQueueDelayMs: request.batching.maxQueueDelayMs },
        alias: request.alias,
      });
      return { scorer: toScorerInfo(status) };
    },
    async unloadScorer(request, ctx) {
      admin(ctx);
      const result = await core.unloadScorer(request.name, request.version, request.drainTimeoutMs);
      return { drainedRequests: result.drainedRequests };
    },
    setAlias(request, ctx) {
      admin(ctx);
      return { previous: core.setAlias(request.alias, request.name, request.version) };
    },
    listScorers() {
      const { scorers, aliases } = core.listScorers();
      // lib/rpc/server.ts serves the Session carrier of every service that declares it.
      return { scorers: scorers.map(toScorerInfo), aliases, sessionStream: true };
    },
  };
}

/** Adds the reward service to `server`. */
export function addRewardService(
  server: RpcServer,
  core: RewardCore,
  options: RewardServiceOptions = {},
): RpcServer {
  return server.addService(RewardService, rewardServiceImpl(core, options));
}
