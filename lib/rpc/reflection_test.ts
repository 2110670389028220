/**
 * Server reflection v1 and v1alpha, called with our own generic client (bidi streaming).
 */
import { fromBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { type FileDescriptorProto, FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import * as v1 from "../../gen/grpc/reflection/v1/reflection_pb.ts";
import * as v1alpha from "../../gen/grpc/reflection/v1alpha/reflection_pb.ts";
import { RewardService } from "../../gen/rdpo/v1/reward_pb.ts";
import { assert, assertEquals } from "../testing/assert.ts";
import { Code } from "./status.ts";
import { startTestServer } from "./testing.ts";
import type { ImplOf } from "./types.ts";

const reward: ImplOf<typeof RewardService> = {
  score: () => ({}),
  loadScorer: () => ({}),
  unloadScorer: () => ({}),
  setAlias: () => ({}),
  listScorers: () => ({}),
};

type Request = NonNullable<MessageInitShape<typeof v1.ServerReflectionRequestSchema>["messageRequest"]>;
type Response = v1.ServerReflectionResponse | v1alpha.ServerReflectionResponse;

async function* from<T>(items: T[]): AsyncGenerator<T> {
  for (const item of items) yield item;
}

const VERSIONS = [
  { name: "v1", service: v1.ServerReflection },
  { name: "v1alpha", service: v1alpha.ServerReflection },
] as const;

/** Sends every request on one reflection stream and returns the responses in order. */
async function ask(
  client: {
    serverReflectionInfo(
      r: AsyncIterable<{ host: string; messageRequest: Request }>,
    ): AsyncIterable<Response>;
  },
  requests: Request[],
): Promise<Response[]> {
  const out: Response[] = [];
  const stream = client.serverReflectionInfo(
    from(requests.map((messageRequest) => ({ host: "h", messageRequest }))),
  );
  for await (const response of stream) out.push(response);
  return out;
}

function files(response: Response): FileDescriptorProto[] {
  assertEquals(
    response.messageResponse.case,
    "fileDescriptorResponse",
    JSON.stringify(response.messageResponse),
  );
  const value = response.messageResponse.value as { fileDescriptorProto: Uint8Array[] };
  return value.fileDescriptorProto.map((bytes) => fromBinary(FileDescriptorProtoSchema, bytes));
}

for (const version of VERSIONS) {
  Deno.test(`reflection ${version.name}: list_services, file_containing_symbol, file_by_filename, errors`, async () => {
    const t = await startTestServer((s) => s.addService(RewardService, reward));
    try {
      const client = t.client(version.service as typeof v1.ServerReflection);
      const responses = await ask(client, [
        { case: "listServices", value: "*" },
        { case: "fileContainingSymbol", value: "rdpo.v1.RewardService" },
        { case: "fileContainingSymbol", value: "rdpo.v1.RewardService.Score" },
        { case: "fileContainingSymbol", value: "rdpo.v1.ListScorersResponse.AliasesEntry" },
        { case: "fileContainingSymbol", value: "rdpo.v1.ScorerState" },
        { case: "fileContainingSymbol", value: "rdpo.v1.DataType" },
        { case: "fileByFilename", value: "rdpo/v1/tensor.proto" },
        { case: "fileContainingSymbol", value: "rdpo.v1.NoSuchThing" },
        { case: "fileByFilename", value: "nope.proto" },
        { case: "allExtensionNumbersOfType", value: "rdpo.v1.ScoreRequest" },
        {
          case: "fileContainingExtension",
          value: { containingType: "rdpo.v1.ScoreRequest", extensionNumber: 100 },
        },
      ]);
      assertEquals(responses.length, 11);
      // Every response echoes its request.
      assertEquals(responses[1].originalRequest?.messageRequest.value, "rdpo.v1.RewardService");
      assertEquals(responses[0].validHost, "h");

      const listed = (responses[0].messageResponse.value as { service: { name: string }[] }).service.map((
        s,
      ) => s.name);
      for (
        const name of [
          "rdpo.v1.RewardService",
          "grpc.health.v1.Health",
          "grpc.reflection.v1.ServerReflection",
          "grpc.reflection.v1alpha.ServerReflection",
        ]
      ) assert(listed.includes(name), `${name} listed in ${listed}`);

      const rewardFiles = files(responses[1]);
      assertEquals(rewardFiles.map((f) => f.name).sort(), [
        "rdpo/v1/reward.proto",
        "rdpo/v1/session.proto",
        "rdpo/v1/tensor.proto",
      ]);
      assertEquals(rewardFiles[0].service[0].name, "RewardService");
      // The Session carrier is listed like any RPC (lib/rpc/session.ts).
      const session = rewardFiles[0].service[0].method.find((m) => m.name === "Session");
      assert(session?.clientStreaming && session.serverStreaming, "Session is a bidi RPC");
      assertEquals(rewardFiles[0].dependency, ["rdpo/v1/session.proto", "rdpo/v1/tensor.proto"]);
      const tensor = rewardFiles.find((f) => f.name === "rdpo/v1/tensor.proto");
      assert(tensor?.messageType.some((m) => m.name === "Tensor"), "tensor.proto holds Tensor");
      for (const i of [2, 3, 4]) assertEquals(files(responses[i])[0].name, "rdpo/v1/reward.proto");
      assertEquals(files(responses[5]).map((f) => f.name), ["rdpo/v1/tensor.proto"]);
      assertEquals(files(responses[6]).map((f) => f.name), ["rdpo/v1/tensor.proto"]);

      for (const i of [7, 8, 10]) {
        const r = responses[i].messageResponse;
        assertEquals(r.case, "errorResponse");
        assertEquals((r.value as { errorCode: number }).errorCode, Code.NOT_FOUND);
      }
      assert(
        (responses[7].messageResponse.value as { errorMessage: string }).errorMessage.includes(
          "rdpo.v1.NoSuchThing",
        ),
        "the error names the symbol",
      );
      assertEquals(responses[9].messageResponse.case, "allExtensionNumbersResponse");
      assertEquals(
        (responses[9].messageResponse.value as { baseTypeName: string }).baseTypeName,
        "rdpo.v1.ScoreRequest",
      );
    } finally {
      await t.close();
    }
  });
}

Deno.test("reflection describes the health and reflection services themselves", async () => {
  const t = await startTestServer(() => {});
  try {
    const responses = await ask(t.client(v1.ServerReflection), [
      { case: "fileContainingSymbol", value: "grpc.health.v1.Health" },
      { case: "fileContainingSymbol", value: "grpc.reflection.v1alpha.ServerReflection" },
    ]);
    assertEquals(files(responses[0])[0].name, "grpc/health/v1/health.proto");
    assertEquals(files(responses[1])[0].name, "grpc/reflection/v1alpha/reflection.proto");
  } finally {
    await t.close();
  }
});
