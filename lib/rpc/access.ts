/**
 * Which role each RPC needs (auth.ts; SECURITY.md, "What is authenticated"). Every method of every
 * served service must appear here: the middleware refuses a method without a rule, and
 * access_test.ts checks the table against the services' descriptors so a new RPC cannot ship
 * unclassified.
 *
 * - read: computes or reports without changing state (Score, SampleCandidates, GetRun, ...).
 * - train: changes the policy's weights or starts and stops runs (what a trainer needs).
 * - admin: changes what a service serves or writes files on it (scorer management, SaveAdapter).
 */
import type { Access } from "./auth.ts";

export const ACCESS: Readonly<Record<string, Readonly<Record<string, Access>>>> = {
  "grpc.health.v1.Health": { Check: "public", Watch: "public", List: "public" },
  "grpc.reflection.v1.ServerReflection": { ServerReflectionInfo: "public" },
  "grpc.reflection.v1alpha.ServerReflection": { ServerReflectionInfo: "public" },
  "rdpo.v1.RewardService": {
    Score: "read",
    ListScorers: "read",
    LoadScorer: "admin",
    UnloadScorer: "admin",
    SetAlias: "admin",
    // The carrier stream only; each message on it is checked as the unary call it stands for.
    Session: "read",
  },
  "rdpo.v1.PolicyService": {
    GetInfo: "read",
    EncodePrompts: "read",
    SampleCandidates: "read",
    PredictNoise: "read",
    Decode: "read",
    EncodeImages: "read",
    Generate: "read",
    LogRatios: "read",
    GetAdapter: "read",
    TrainStep: "train",
    ApplyGradients: "train",
    // The trainer resets the adapter at the start of a run and restores it on resume.
    LoadAdapter: "train",
    // Writes a file on the policy's disk.
    SaveAdapter: "admin",
    // The carrier stream only; each message on it is checked as the unary call it stands for.
    Session: "read",
  },
  "rdpo.v1.TrainerService": {
    GetRun: "read",
    ListRuns: "read",
    StreamProgress: "read",
    StartRun: "train",
    StopRun: "train",
  },
};

/** The role `service`/`method` needs, or undefined when the table has no rule for it. */
export function accessOf(service: string, method: string): Access | undefined {
  return ACCESS[service]?.[method];
}
