import { create, toBinary } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { TrainStepRequestSchema } from "../../gen/rdpo/v1/policy_pb.ts";
import { ListScorersResponseSchema, ScoreRequestSchema } from "../../gen/rdpo/v1/reward_pb.ts";
import { StreamProgressResponseSchema } from "../../gen/rdpo/v1/trainer_pb.ts";
import { assert, assertEquals } from "../testing/assert.ts";
import { wireTypeProblem } from "./wire_check.ts";

Deno.test("wireTypeProblem accepts what protobuf-es writes (nested, repeated, maps, int64, doubles)", () => {
  const cases = [
    toBinary(
      ScoreRequestSchema,
      create(ScoreRequestSchema, {
        scorer: "x",
        images: [{ width: 1, height: 1, channels: 3, data: new Uint8Array(3) }, {}],
        prompts: ["a", ""],
      }),
    ),
    toBinary(
      ListScorersResponseSchema,
      create(ListScorersResponseSchema, {
        scorers: [{ name: "a", loadedAtMs: -5n, meanLatencyMs: 1.5, batching: { maxBatch: 3 } }],
        aliases: { best: "a@1", "": "" },
      }),
    ),
    toBinary(
      StreamProgressResponseSchema,
      create(StreamProgressResponseSchema, { event: { step: 2n ** 63n, evalRewards: { pick: 0.25 } } }),
    ),
    toBinary(
      TrainStepRequestSchema,
      create(TrainStepRequestSchema, {
        winners: { latents: { dtype: 1, shape: [2n, 4n], data: new Uint8Array(32) }, stepIndices: [1, 2, 3] },
        expectedOptimizerStep: 7n,
      }),
    ),
  ];
  assertEquals(wireTypeProblem(ScoreRequestSchema, new Uint8Array(0)), undefined, "empty message");
  assertEquals(wireTypeProblem(ScoreRequestSchema, cases[0]), undefined);
  assertEquals(wireTypeProblem(ListScorersResponseSchema, cases[1]), undefined);
  assertEquals(wireTypeProblem(StreamProgressResponseSchema, cases[2]), undefined);
  assertEquals(wireTypeProblem(TrainStepRequestSchema, cases[3]), undefined);
});

Deno.test("wireTypeProblem: repeated numbers may come packed or one per tag; unknown fields pass", () => {
  // Transitions.step_indices (field 4, uint32) unpacked, plus unknown field 99 (fixed32).
  const w = new BinaryWriter();
  w.tag(4, WireType.Varint).uint32(5).tag(4, WireType.Varint).uint32(6).tag(99, WireType.Bit32).fixed32(1);
  const transitions = TrainStepRequestSchema.field.winners.message!;
  assertEquals(wireTypeProblem(transitions, w.finish()), undefined);
});

Deno.test("wireTypeProblem names the field and the wire types (table)", () => {
  const table: [string, Uint8Array, string][] = [
    [
      "scalar",
      new Uint8Array([0x08, 0x00]),
      "rdpo.v1.ScoreRequest.scorer: sent as Varint, expected LengthDelimited",
    ],
    [
      "nested",
      new Uint8Array([0x12, 0x03, 0x0a, 0x01, 0x41]),
      "rdpo.v1.ScoreRequest.images[0].width: sent as LengthDelimited, expected Varint",
    ],
    [
      "repeated string as fixed32",
      new Uint8Array([0x1d, 1, 2, 3, 4]),
      "rdpo.v1.ScoreRequest.prompts[0]: sent as Bit32",
    ],
    ["length past end", new Uint8Array([0x12, 0x05, 0x08]), "runs past the end"],
  ];
  for (const [name, bytes, expected] of table) {
    const problem = wireTypeProblem(ScoreRequestSchema, bytes);
    assert(problem?.includes(expected), `${name}: ${problem}`);
  }
  // Map value with the wrong wire type: aliases entry {key: "a", value: varint}.
  const entry = new Uint8Array([0x0a, 0x01, 0x61, 0x10, 0x01]);
  const body = new Uint8Array([0x12, entry.length, ...entry]);
  assertEquals(
    wireTypeProblem(ListScorersResponseSchema, body),
    "rdpo.v1.ListScorersResponse.aliases[0].value: sent as Varint, expected LengthDelimited",
  );
});
