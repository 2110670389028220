/**
 * lib/rdpo: the math of RDPO_SPEC.md as pure functions (no gRPC, no I/O), shared by the policy
 * service and the trainer.
 *
 * Plain numbers (no tfjs backend needed): schedule, timesteps, step coefficients, estimators,
 * pairing, step metrics, the counter-based RNG. tfjs tensors: sampler step, guidance, log-probs and
 * log-ratios, losses. Gradient computations need tfjs' gradient functions registered (importing
 * `@tensorflow/tfjs` does that; @tensorflow/tfjs-core alone registers none).
 */
export * from "./schedule.ts";
export * from "./timesteps.ts";
export * from "./step_coefficients.ts";
export * from "./sampler_step.ts";
export * from "./guidance.ts";
export * from "./log_prob.ts";
export * from "./losses.ts";
export * from "./pair_metrics.ts";
export * from "./estimators.ts";
export * from "./pairing.ts";
export * from "./rng.ts";
export { mulHi32, philox4x32 } from "./philox.ts";
export { stopGradient } from "./stop_gradient.ts";
export type { PerItem } from "./per_item.ts";
