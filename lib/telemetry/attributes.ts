/**
 * Every span name, attribute key and metric name the project emits, in one place (INFRA.md,
 * "OpenTelemetry": the RPC conventions are being renamed; we use the OLD set consistently because
 * most backends and dashboards still read it: `rpc.system`, `rpc.service`, `rpc.method`, integer
 * `rpc.grpc.status_code`, `rpc.server.duration` / `rpc.client.duration` in milliseconds).
 *
 * Metric labels reuse the span attribute keys, so a Prometheus series and a span can be joined on
 * the same names (Prometheus turns the dots into underscores).
 */

/** Instrumentation scope of every tracer and meter. */
export const SCOPE_NAME = "rdpo";

// --- RPC (old semantic conventions) ---
export const ATTR_RPC_SYSTEM = "rpc.system";
export const ATTR_RPC_SERVICE = "rpc.service";
export const ATTR_RPC_METHOD = "rpc.method";
/** Integer gRPC status code (0 = OK). */
export const ATTR_RPC_GRPC_STATUS_CODE = "rpc.grpc.status_code";
/** The value of rpc.system for every call we make or serve. */
export const RPC_SYSTEM_GRPC = "grpc";
/** Peer address as grpc-js reports it ("127.0.0.1:53124"), old conventions' socket attribute. */
export const ATTR_NET_SOCK_PEER_ADDR = "net.sock.peer.addr";

// --- RDPO training step (trainer) ---
export const SPAN_RDPO_STEP = "rdpo.step";
/** Per phase of a step; the phase name follows the dot ("rdpo.sample", "rdpo.score", "rdpo.train"). */
export const SPAN_RDPO_PHASE_PREFIX = "rdpo.";
/** Event on the step span, one per fine-tune timestep index that produced pairs or ties. */
export const EVENT_RDPO_FINETUNE_STEP = "rdpo.finetune_step";
export const ATTR_RDPO_STEP = "rdpo.step";
export const ATTR_RDPO_PROMPT_BATCH = "rdpo.prompt_batch";
export const ATTR_RDPO_PAIRS = "rdpo.pairs";
export const ATTR_RDPO_SKIPPED_TIES = "rdpo.skipped_ties";
export const ATTR_RDPO_REWARD_MARGIN = "rdpo.reward_margin";
export const ATTR_RDPO_PHASE = "rdpo.phase";
/** Inference-step index of a sampling step (RDPO_SPEC.md section 4: fine-tune step indices). */
export const ATTR_RDPO_STEP_INDEX = "rdpo.step_index";
/** True when the step index is one of the configured fine-tune steps. */
export const ATTR_RDPO_FINETUNE = "rdpo.finetune";
export const ATTR_RDPO_METHOD = "rdpo.method";
/** A data-parallel step's work on one policy replica (its sample, score and train spans). */
export const SPAN_RDPO_REPLICA = "rdpo.replica";
export const ATTR_RDPO_REPLICA_INDEX = "rdpo.replica.index";
export const ATTR_RDPO_REPLICA_ADDRESS = "rdpo.replica.address";
/** Global batch items [offset, offset + size) a replica samples. */
export const ATTR_RDPO_SHARD_OFFSET = "rdpo.shard.offset";
export const ATTR_RDPO_SHARD_SIZE = "rdpo.shard.size";

// --- Reward service ---
export const SPAN_SCORER_INFERENCE = "reward.scorer.inference";
export const ATTR_SCORER_NAME = "rdpo.scorer.name";
export const ATTR_SCORER_VERSION = "rdpo.scorer.version";
export const ATTR_SCORER_KIND = "rdpo.scorer.kind";
/** Images in the scorer call (the dynamic batch). */
export const ATTR_SCORER_BATCH_SIZE = "rdpo.scorer.batch_size";
/** Requests merged into the batch. */
export const ATTR_SCORER_REQUESTS = "rdpo.scorer.requests";
/** Longest wait in the queue among the batch's requests, in ms. */
export const ATTR_SCORER_QUEUE_WAIT_MS = "rdpo.scorer.queue_wait_ms";
export const ATTR_ALIAS = "rdpo.scorer.alias";

// --- Policy service ---
export const SPAN_POLICY_UNET = "policy.unet.forward";
export const SPAN_POLICY_DECODE = "policy.vae.decode";
export const SPAN_POLICY_TRAIN_STEP = "policy.train_step";
/** Samples in one UNet pass, decode or train step (images, or pairs x 2). */
export const ATTR_POLICY_BATCH = "rdpo.policy.batch";
export const ATTR_POLICY_TIMESTEP = "rdpo.policy.timestep";
export const ATTR_POLICY_PAIRS = "rdpo.policy.pairs";
export const ATTR_POLICY_LOSS_KIND = "rdpo.policy.loss_kind";

// --- Metric names (units in the unit field, Prometheus suffixes derived from them) ---
export const METRIC_RPC_SERVER_DURATION = "rpc.server.duration";
export const METRIC_RPC_CLIENT_DURATION = "rpc.client.duration";
export const METRIC_RPC_SERVER_REQUESTS = "rdpo.rpc.server.requests";
export const METRIC_RPC_SERVER_ERRORS = "rdpo.rpc.server.errors";
export const METRIC_RPC_CLIENT_REQUESTS = "rdpo.rpc.client.requests";
export const METRIC_RPC_CLIENT_ERRORS = "rdpo.rpc.client.errors";
export const METRIC_REWARD_INFERENCE_DURATION = "rdpo.reward.inference.duration";
export const METRIC_REWARD_QUEUE_WAIT = "rdpo.reward.queue_wait.duration";
export const METRIC_REWARD_REQUEST_DURATION = "rdpo.reward.request.duration";
export const METRIC_REWARD_BATCH_SIZE = "rdpo.reward.batch.size";
export const METRIC_REWARD_ALIAS_SWAPS = "rdpo.reward.alias.swaps";
export const METRIC_TRAINER_STEP_DURATION = "rdpo.trainer.step.duration";
export const METRIC_TRAINER_PHASE_DURATION = "rdpo.trainer.phase.duration";
export const METRIC_TRAINER_PAIRS = "rdpo.trainer.pairs";
export const METRIC_TRAINER_SKIPPED_TIES = "rdpo.trainer.skipped_ties";
export const METRIC_POLICY_UNET_DURATION = "rdpo.policy.unet.duration";
export const METRIC_POLICY_DECODE_DURATION = "rdpo.policy.decode.duration";
export const METRIC_POLICY_TRAIN_STEP_DURATION = "rdpo.policy.train_step.duration";
