/**
 * Data-parallel RDPO (issue 18) through real policy processes on loopback, tiny model, JPEG reward:
 *   - 1, 2 and 3 replicas with the same global batch (3 prompts: P = 2 does not divide it), seed and
 *     steps end with bit-identically the same adapter, and every replica holds it;
 *   - kill -9 of one of 3 replicas mid-run: the run reloads the last checkpoint into every replica,
 *     replays, records steps 1..N exactly once and ends with the uninterrupted run's adapter;
 *   - a replica whose adapter is changed behind the run's back stops the run, naming the replica;
 *   - resumed with another P: still bit-identical, and the run says so;
 *   - the one-address path (one batched TrainStep) differs from the reduction only by float32
 *     rounding (bounded below).
 */
import { join } from "node:path";
import { assert, assertEquals, assertRejects } from "../lib/testing/assert.ts";
import { ReplicaDivergedError } from "../services/trainer/data_parallel_step.ts";
import { train } from "../services/trainer/loop.ts";
import { readMetrics } from "../services/trainer/metrics.ts";
import { createClient } from "../lib/rpc/client.ts";
import { PolicyService } from "../gen/rdpo/v1/policy_pb.ts";
import { decodeFloat32 } from "../lib/tensor/codec.ts";
import { resolvePolicyReplicas } from "../services/trainer/replicas.ts";
import { loopbackCluster } from "../services/trainer/testing/cluster.ts";

const cluster = await loopbackCluster(3);
const { tmp, policies } = cluster;
const config = cluster.config;

const quiet = { progress: "none" as const, log: () => {}, skipEvaluation: true };

/** Every replica's adapter checksum, asked directly. */
async function checksums(addresses: string[]): Promise<string[]> {
  return await Promise.all(addresses.map(async (a) => {
    const c = createClient(PolicyService, a);
    try {
      return (await c.getInfo({}, { timeoutMs: 30_000 })).adapterChecksum;
    } finally {
      c.close();
    }
  }));
}

async function adapterWeights(address: string): Promise<Map<string, Float32Array>> {
  const c = createClient(PolicyService, address);
  try {
    const r = await c.getAdapter({}, { timeoutMs: 30_000 });
    return new Map(r.adapter!.weights.map((w, i) => [w.name, decodeFloat32(`w[${i}]`, w.tensor).data]));
  } finally {
    c.close();
  }
}

Deno.test("resolvePolicyReplicas: a list as given, dns:/// through the system resolver", async () => {
  assertEquals(await resolvePolicyReplicas(["127.0.0.1:1", "127.0.0.1:2"]), ["127.0.0.1:1", "127.0.0.1:2"]);
  assertEquals(await resolvePolicyReplicas("127.0.0.1:5"), ["127.0.0.1:5"]);
  // localhost comes from /etc/hosts: no query leaves the machine.
  assertEquals(await resolvePolicyReplicas("dns:///localhost:50052"), ["127.0.0.1:50052"]);
});

Deno.test({
  name: "data-parallel RDPO: 1, 2, 3 replicas give one adapter; kill -9 of a replica replays exactly",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    await cluster.start();
    const all = cluster.addresses();
    try {
      let reference = "";
      await t.step("1 replica (the data-parallel path)", async () => {
        const r = await train(config("p1", [all[0]]), quiet);
        assertEquals([r.steps, r.replicas], [3, 1]);
        assert(r.optimizerStep >= 1, "pairs were trained");
        reference = r.adapterChecksum;
      });
      for (const p of [2, 3]) {
        await t.step(`${p} replicas: bit-identical adapter, every replica holds it`, async () => {
          const r = await train(config(`p${p}`, all.slice(0, p)), quiet);
          assertEquals([r.steps, r.replicas], [3, p]);
          assertEquals(r.adapterChecksum, reference);
          assertEquals(await checksums(all.slice(0, p)), new Array(p).fill(reference));
          const steps = (await readMetrics(join(tmp, `p${p}`, "metrics.jsonl"))).filter((x) =>
            x.type === "step"
          );
          assert(
            steps.every((s) => s.type === "step" && (s.gradient_bytes ?? 0) > 0),
            "gradient bytes recorded",
          );
        });
      }

      await t.step(
        "kill -9 of replica 2 of 3 mid-run: replay from the checkpoint, same adapter",
        async () => {
          let restarted: Promise<void> | null = null;
          const r = await train(config("fault", all), {
            ...quiet,
            onRecord: (rec) => {
              if (rec.type === "step" && rec.step === 1 && !restarted) restarted = policies[2].restart(300);
            },
          });
          await restarted;
          assert(r.recoveries >= 1, "the run noticed the restart");
          assertEquals(r.steps, 3);
          assertEquals(r.adapterChecksum, reference);
          assertEquals(await checksums(all), [reference, reference, reference]);
          const steps = (await readMetrics(join(tmp, "fault", "metrics.jsonl"))).filter((x) =>
            x.type === "step"
          );
          assertEquals(steps.map((s) => s.step), [1, 2, 3]);
        },
      );

      await t.step("a replica whose adapter changes behind the run's back stops it, named", async () => {
        const tamper = createClient(PolicyService, all[1]);
        let tampered: Promise<unknown> | null = null;
        try {
          const e = await assertRejects(() =>
            train(config("diverge", all), {
              ...quiet,
              onRecord: (rec) => {
                if (rec.type === "step" && rec.step === 1 && !tampered) {
                  tampered = tamper.loadAdapter({ reset: true, seed: 99n }, { timeoutMs: 30_000 });
                }
              },
            }), ReplicaDivergedError);
          assert(e.message.includes(`replica 1 (${all[1]})`), e.message);
        } finally {
          await tampered;
          tamper.close();
        }
      });

      await t.step("stopped with 3 replicas, resumed with 2: bit-identical, and said so", async () => {
        const first = await train(config("resume", all), { ...quiet, stopAtStep: 1 });
        assertEquals(first.steps, 1);
        const lines: string[] = [];
        const resumed = await train(config("resume", all.slice(0, 2)), {
          ...quiet,
          resume: true,
          log: (l) => lines.push(l),
        });
        assertEquals(resumed.adapterChecksum, reference);
        assert(lines.some((l) => /3 replica.*2 replica.*bit-identical/.test(l)), lines.join("\n"));
      });

      await t.step("one address (batched TrainStep): equal up to float32 rounding", async () => {
        const dpWeights = await adapterWeights(all[0]);
        const r = await train(config("single", all[0]), quiet);
        assertEquals(r.replicas, 0);
        const single = await adapterWeights(all[0]);
        let maxDiff = 0;
        let maxAbs = 0;
        for (const [k, w] of single) {
          const v = dpWeights.get(k)!;
          for (let i = 0; i < w.length; i++) {
            maxDiff = Math.max(maxDiff, Math.abs(w[i] - v[i]));
            maxAbs = Math.max(maxAbs, Math.abs(w[i]));
          }
        }
        // 3 Adam steps of lr 0.01 on gradients that differ by rounding: far below one step's size.
        assert(maxDiff < 1e-3, `max |difference| ${maxDiff} (max |weight| ${maxAbs})`);
        console.log(`one address vs data-parallel: max |adapter difference| ${maxDiff.toExponential(2)}`);
      });
    } finally {
      await cluster.stop();
    }
  },
});
