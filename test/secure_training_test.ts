/**
 * A training run over mutual TLS with bearer tokens, all real processes: reward and policy serve
 * mTLS and a token table, and the trainer CLI (`services/trainer/main.ts train`) reaches them with
 * RDPO_CLIENT_* only (lib/rpc/client_security.ts). A trainer holding a `read` token is refused at
 * its first mutating call, naming the method and the role it lacks.
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ServiceProcess } from "../lib/process/service_process.ts";
import { makeTestPki, opensslMissing } from "../lib/rpc/testing_tls.ts";
import { assert, assertEquals } from "../lib/testing/assert.ts";
import { initBackend } from "../lib/tensor/backend.ts";
import { writeTinyModel } from "../services/policy/testing/tiny_model.ts";

const noOpenssl = opensslMissing();
if (noOpenssl) console.error(`secure_training_test: skipped: ${noOpenssl}`);

const TRAIN_TOKEN = "trainer-job-token-0123456789";
const READ_TOKEN = "dashboard-token-0123456789";

Deno.test({
  name: "secure training: the trainer CLI trains through mTLS + tokens; a read token is refused",
  ignore: !!noOpenssl,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const tmp = await Deno.makeTempDir({ prefix: "rdpo-secure-train-" });
    const pki = makeTestPki(tmp, "pki");
    const tokens = join(tmp, "tokens.yaml");
    await Deno.writeTextFile(
      tokens,
      `tokens:\n  - { name: trainer-job, role: train, token: "${TRAIN_TOKEN}" }\n` +
        `  - { name: dashboard, role: read, token: "${READ_TOKEN}" }\n`,
    );
    const secure = [
      "--tls-cert",
      pki.serverCert,
      "--tls-key",
      pki.serverKey,
      "--tls-client-ca",
      pki.caCert,
      "--auth-tokens-file",
      tokens,
    ];
    const modelDir = join(tmp, "model");
    await initBackend("cpu");
    await writeTinyModel(modelDir, { seed: 2, std: 0.05 });
    await Deno.writeTextFile(join(tmp, "prompts.txt"), "a red circle\na blue square\n");
    const reward = new ServiceProcess("services/reward/main.ts", secure);
    const policy = new ServiceProcess("services/policy/main.ts", [
      ...secure,
      "--model-dir",
      modelDir,
      "--lora-rank",
      "2",
      "--adapter-root",
      join(tmp, "adapters"),
    ]);
    const trainer = async (runDir: string, tokenFile: string) => {
      const configFile = join(tmp, `${runDir}.json`);
      await Deno.writeTextFile(
        configFile,
        JSON.stringify({
          method: "rdpo",
          seed: 1,
          run_dir: join(tmp, runDir),
          progress: "none",
          sampling: { num_inference_steps: 4, eta: 1.0, guidance_scale: 3.0 },
          preference: { num_candidates: 2, finetune_step_indices: [0] },
          lora: { rank: 2 },
          training: { steps: 1, prompt_batch_size: 2 },
          prompts: { file: join(tmp, "prompts.txt") },
          scorers: [{ name: "jpeg_compressibility", weight: 1 }],
          eval: { every: 0, at_start: false, at_end: false },
          services: { policy: policy.address, reward: reward.address },
          rpc: { retry: { max_attempts: 2 } },
        }),
      );
      const out = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          fileURLToPath(new URL("../services/trainer/main.ts", import.meta.url)),
          "train",
          "--config",
          configFile,
        ],
        env: {
          RDPO_CLIENT_TLS_CA: pki.caCert,
          RDPO_CLIENT_TLS_CERT: pki.clientCert,
          RDPO_CLIENT_TLS_KEY: pki.clientKey,
          RDPO_CLIENT_TLS_SERVER_NAME: "localhost",
          RDPO_CLIENT_TOKEN_FILE: tokenFile,
        },
        stdout: "piped",
        stderr: "piped",
      }).output();
      return {
        code: out.code,
        stdout: new TextDecoder().decode(out.stdout),
        stderr: new TextDecoder().decode(out.stderr),
      };
    };
    try {
      await Promise.all([reward.start(), policy.start()]);
      const trainFile = join(tmp, "train.token");
      const readFile = join(tmp, "read.token");
      await Deno.writeTextFile(trainFile, `${TRAIN_TOKEN}\n`);
      await Deno.writeTextFile(readFile, `${READ_TOKEN}\n`);

      const ok = await trainer("run-ok", trainFile);
      assertEquals(ok.code, 0, ok.stderr.slice(-2000));
      const result = JSON.parse(ok.stdout.trim().split("\n").pop()!);
      assertEquals(result.steps, 1);

      const refused = await trainer("run-read", readFile);
      assert(refused.code !== 0, "a read token must not train");
      assert(
        refused.stderr.includes('LoadAdapter needs role train; token "dashboard" has role read'),
        refused.stderr.slice(-2000),
      );
      for (const s of [ok.stderr, refused.stderr]) {
        assert(!s.includes(TRAIN_TOKEN) && !s.includes(READ_TOKEN), "a token was printed");
      }
    } finally {
      await Promise.all([reward.stop(), policy.stop()]);
      await Deno.remove(tmp, { recursive: true }).catch(() => {});
    }
  },
});
