/**
 * The project's metrics, defined once per process (names and labels: attributes.ts). Every
 * service's /metrics shows the ones its code records.
 */
import * as A from "./attributes.ts";
import { BATCH_SIZE_BUCKETS, createCounter, createHistogram } from "./metrics.ts";

// RPC (labels: rpc.system, rpc.service, rpc.method, and rpc.grpc.status_code on durations/errors)
export const rpcServerDuration = createHistogram(A.METRIC_RPC_SERVER_DURATION, {
  description: "Duration of served gRPC calls, from arrival to final status",
  unit: "ms",
});
export const rpcServerRequests = createCounter(A.METRIC_RPC_SERVER_REQUESTS, {
  description: "gRPC calls served",
  unit: "{request}",
});
export const rpcServerErrors = createCounter(A.METRIC_RPC_SERVER_ERRORS, {
  description: "gRPC calls served that ended with a status other than OK",
  unit: "{request}",
});
export const rpcClientDuration = createHistogram(A.METRIC_RPC_CLIENT_DURATION, {
  description: "Duration of gRPC calls made, from start to final status",
  unit: "ms",
});
export const rpcClientRequests = createCounter(A.METRIC_RPC_CLIENT_REQUESTS, {
  description: "gRPC calls made",
  unit: "{request}",
});
export const rpcClientErrors = createCounter(A.METRIC_RPC_CLIENT_ERRORS, {
  description: "gRPC calls made that ended with a status other than OK",
  unit: "{request}",
});

// Reward service (labels: rdpo.scorer.name, rdpo.scorer.version)
export const rewardInferenceDuration = createHistogram(A.METRIC_REWARD_INFERENCE_DURATION, {
  description: "Time a scorer spent on one dynamic batch",
  unit: "ms",
});
export const rewardQueueWait = createHistogram(A.METRIC_REWARD_QUEUE_WAIT, {
  description: "Time a score request waited in the batcher's queue",
  unit: "ms",
});
export const rewardRequestDuration = createHistogram(A.METRIC_REWARD_REQUEST_DURATION, {
  description: "Reward latency of one score request in the batcher: queue wait plus inference",
  unit: "ms",
});
export const rewardBatchSize = createHistogram(A.METRIC_REWARD_BATCH_SIZE, {
  description: "Images per scorer call (dynamic batch size)",
  unit: "{image}",
  buckets: BATCH_SIZE_BUCKETS,
});
export const rewardAliasSwaps = createCounter(A.METRIC_REWARD_ALIAS_SWAPS, {
  description: "Alias flips in the reward registry (a load with an alias, or SetAlias)",
  unit: "{swap}",
});

// Trainer (labels: rdpo.phase on the phase histogram)
export const trainerStepDuration = createHistogram(A.METRIC_TRAINER_STEP_DURATION, {
  description: "Wall time of one RDPO training step",
  unit: "ms",
});
export const trainerPhaseDuration = createHistogram(A.METRIC_TRAINER_PHASE_DURATION, {
  description: "Wall time of one phase (sample, score, rank, train) within a training step",
  unit: "ms",
});
export const trainerPairs = createCounter(A.METRIC_TRAINER_PAIRS, {
  description: "Preference pairs trained on",
  unit: "{pair}",
});
export const trainerSkippedTies = createCounter(A.METRIC_TRAINER_SKIPPED_TIES, {
  description: "Pairs skipped because their reward gap was below min_margin",
  unit: "{pair}",
});

// Policy service
export const policyUnetDuration = createHistogram(A.METRIC_POLICY_UNET_DURATION, {
  description: "One guided UNet noise prediction over a batch",
  unit: "ms",
});
export const policyDecodeDuration = createHistogram(A.METRIC_POLICY_DECODE_DURATION, {
  description: "One VAE decode of a batch of latents",
  unit: "ms",
});
export const policyTrainStepDuration = createHistogram(A.METRIC_POLICY_TRAIN_STEP_DURATION, {
  description: "One preference-optimization train step (forward, backward, optimizer)",
  unit: "ms",
});
