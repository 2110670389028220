/**
 * The table of malformed Score requests, with the status each must get and a part of the message
 * it must carry. Shared by core_test.ts (domain errors) and service_test.ts (the same cases over
 * gRPC), so both layers are held to one contract. Expects scorers "img" (image-only) and "txt"
 * (needs prompts) to be loaded, and limits maxImageSide 512, maxImagesPerRequest 8,
 * maxPromptChars 100 (TEST_LIMITS).
 */
import type { ImageInput, RewardLimits, ScoreInput } from "./core.ts";

export const TEST_LIMITS: RewardLimits = { maxImageSide: 512, maxImagesPerRequest: 8, maxPromptChars: 100 };

export type ExpectedCode = "INVALID_ARGUMENT" | "NOT_FOUND" | "RESOURCE_EXHAUSTED";

export interface BadScoreRequest {
  name: string;
  input: ScoreInput;
  code: ExpectedCode;
  message: string;
}

export function rgb(width: number, height: number, fill = 128): ImageInput {
  return { width, height, channels: 3, data: new Uint8Array(width * height * 3).fill(fill) };
}

const ok = rgb(4, 4);

export const BAD_SCORE_REQUESTS: BadScoreRequest[] = [
  {
    name: "empty batch",
    input: { scorer: "img", images: [], prompts: [] },
    code: "INVALID_ARGUMENT",
    message: "images: empty",
  },
  {
    name: "wrong byte count",
    input: { scorer: "img", images: [ok, ok, { ...rgb(256, 256), data: new Uint8Array(100) }], prompts: [] },
    code: "INVALID_ARGUMENT",
    message: "images[2].data: expected 196608 bytes (256x256x3), got 100",
  },
  {
    name: "channels 4",
    input: { scorer: "img", images: [{ ...rgb(2, 2), channels: 4 }], prompts: [] },
    code: "INVALID_ARGUMENT",
    message: "images[0].channels: expected 3 (RGB, HWC), got 4",
  },
  {
    name: "channels unset",
    input: { scorer: "img", images: [{ ...rgb(2, 2), channels: 0 }], prompts: [] },
    code: "INVALID_ARGUMENT",
    message: "images[0].channels: expected 3 (RGB, HWC), got 0 (unset)",
  },
  {
    name: "zero width",
    input: {
      scorer: "img",
      images: [ok, { width: 0, height: 4, channels: 3, data: new Uint8Array(0) }],
      prompts: [],
    },
    code: "INVALID_ARGUMENT",
    message: "images[1].width: must be > 0, got 0",
  },
  {
    name: "zero height",
    input: {
      scorer: "img",
      images: [{ width: 4, height: 0, channels: 3, data: new Uint8Array(0) }],
      prompts: [],
    },
    code: "INVALID_ARGUMENT",
    message: "images[0].height: must be > 0, got 0",
  },
  {
    name: "oversized side",
    input: {
      scorer: "img",
      images: [{ width: 513, height: 1, channels: 3, data: new Uint8Array(513 * 3) }],
      prompts: [],
    },
    code: "RESOURCE_EXHAUSTED",
    message: "images[0].width: 513 exceeds the limit of 512 pixels (--max-image-side)",
  },
  {
    name: "too many images",
    input: { scorer: "img", images: Array.from({ length: 9 }, () => ok), prompts: [] },
    code: "RESOURCE_EXHAUSTED",
    message: "images: 9 images exceed the limit of 8 per request",
  },
  {
    name: "prompt count mismatch",
    input: { scorer: "txt", images: [ok, ok, ok], prompts: ["a", "b"] },
    code: "INVALID_ARGUMENT",
    message: "prompts: expected 0, 1 (shared) or 3 (one per image) prompts, got 2",
  },
  {
    name: "needs prompts, none given",
    input: { scorer: "txt", images: [ok], prompts: [] },
    code: "INVALID_ARGUMENT",
    message: "prompts: scorer txt@1 (text-fake) needs prompts",
  },
  {
    name: "prompt too long",
    input: { scorer: "txt", images: [ok], prompts: ["x".repeat(101)] },
    code: "INVALID_ARGUMENT",
    message: "prompts[0]: 101 characters exceed the limit of 100",
  },
  {
    name: "empty scorer",
    input: { scorer: "", images: [ok], prompts: [] },
    code: "INVALID_ARGUMENT",
    message: "scorer: empty",
  },
  {
    name: "unknown scorer",
    input: { scorer: "nope", images: [ok], prompts: [] },
    code: "NOT_FOUND",
    message: 'no scorer, alias or version named "nope"',
  },
  {
    name: "unknown version",
    input: { scorer: "img@7", images: [ok], prompts: [] },
    code: "NOT_FOUND",
    message: "scorer img@7 is not loaded",
  },
];
