/**
 * The trainer's command line:
 *
 *   deno task train --config services/trainer/configs/rdpo_animals.yaml [--resume] [--force]
 *                   [--report-to tensorboard]
 *   deno task eval  --config <file> [--best-of-n]      base vs tuned table, or step-wise best-of-N
 *   deno task serve:trainer [--host H] [--port P]      TrainerService: start runs, stream progress
 *
 * Service addresses, deadlines and everything else come from the config file (services.policy,
 * services.reward, ...); `--set key.path=value` overrides single keys (YAML values).
 */
import { parse as parseYaml } from "yaml";
import { create } from "@bufbuild/protobuf";
import { RunState, StreamProgressResponseSchema, TrainerService } from "../../gen/rdpo/v1/trainer_pb.ts";
import { serviceCommand, type ServiceMainOptions } from "../../lib/rpc/main.ts";
import { FlagError, type FlagSpec, type FlagSpecs, type FlagValues } from "../../lib/rpc/flags.ts";
import { type CommandSpec, runCommand } from "../../lib/cli/command.ts";
import { NotFoundError } from "../../lib/errors.ts";
import {
  configHash,
  loadConfigFile,
  parseConfig,
  parseConfigText,
  REPORT_TARGETS,
  type ReportTarget,
  resolveRunDir,
  type RunConfig,
} from "./config.ts";
import { bestOfN, evaluateModel } from "./evaluate.ts";
import { train } from "./loop.ts";
import { loadPromptSets } from "./prompts.ts";
import { connectServices } from "./services.ts";
import { progressEventMessage } from "./messages.ts";
import type { MetricsRecord } from "./metrics.ts";

/** Applies `a.b.c=value` overrides (value parsed as YAML) to a parsed config object. */
function applyOverrides(raw: Record<string, unknown>, sets: string[]): Record<string, unknown> {
  for (const s of sets) {
    const eq = s.indexOf("=");
    if (eq < 1) throw new FlagError(`--set: expected key.path=value, got "${s}"`);
    const path = s.slice(0, eq).split(".");
    let node = raw as Record<string, unknown>;
    for (const k of path.slice(0, -1)) {
      if (typeof node[k] !== "object" || node[k] === null) node[k] = {};
      node = node[k] as Record<string, unknown>;
    }
    node[path.at(-1)!] = parseYaml(s.slice(eq + 1));
  }
  return raw;
}

async function configFrom(path: string, sets: string[]): Promise<RunConfig> {
  try {
    await Deno.stat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new FlagError(`--config: no file ${path}`);
    throw e;
  }
  if (sets.length === 0) return await loadConfigFile(path);
  const raw = applyOverrides(parseConfigText(await Deno.readTextFile(path), path), sets);
  return parseConfig(JSON.stringify(raw), path);
}

/** Flags of every trainer command that reads a run config. */
const CONFIG_FLAGS = {
  config: {
    type: "string",
    env: ["TRAINER_CONFIG"],
    required: true,
    description: "run config (YAML), e.g. services/trainer/configs/rdpo_animals.yaml",
  },
  set: {
    type: "list",
    description: "override one config key, key.path=value (value parsed as YAML)",
  },
} as const satisfies FlagSpecs;

export const TRAIN_FLAGS = {
  ...CONFIG_FLAGS,
  resume: { type: "bool", default: false, description: "continue from the run folder's last checkpoint" },
  force: { type: "bool", default: false, description: "resume even if the config hash differs" },
  reportTo: {
    type: "string",
    env: ["TRAINER_REPORT_TO"],
    choices: REPORT_TARGETS,
    description:
      "where metrics also go (overrides the config's report_to): tensorboard event files in the run folder",
  },
} as const satisfies FlagSpecs;

export const EVAL_FLAGS = {
  ...CONFIG_FLAGS,
  bestOfN: {
    type: "bool",
    default: false,
    description: "step-wise best-of-N sampling (RDPO_SPEC.md section 7)",
  },
} as const satisfies FlagSpecs;

async function trainCommand(values: FlagValues<typeof TRAIN_FLAGS>): Promise<void> {
  let config = await configFrom(values.config, values.set);
  if (values.reportTo !== undefined) config = { ...config, report_to: values.reportTo as ReportTarget };
  if (config.mode === "best_of_n") {
    // Best-of-N presets describe an evaluation, not a training run (RDPO_SPEC.md section 7).
    console.error(`mode best_of_n: running step-wise best-of-N evaluation (deno task eval --best-of-n)`);
    return await evalCommand({ config: values.config, set: values.set, bestOfN: true });
  }
  const controller = new AbortController();
  Deno.addSignalListener("SIGINT", () => {
    console.error("\nstopping after this step (checkpoint follows); press Ctrl-C again to abort");
    if (controller.signal.aborted) Deno.exit(130);
    controller.abort();
  });
  const r = await train(config, { resume: values.resume, force: values.force, signal: controller.signal });
  console.log(JSON.stringify({
    run_dir: r.runDir,
    steps: r.steps,
    optimizer_step: r.optimizerStep,
    adapter_checksum: r.adapterChecksum,
    mean_wire_ms_per_step: Number(r.meanWireMs.toFixed(3)),
    report: r.reportPath,
  }));
}

async function evalCommand(values: FlagValues<typeof EVAL_FLAGS>): Promise<void> {
  const config = await configFrom(values.config, values.set);
  const services = connectServices(config);
  try {
    const prompts = await loadPromptSets(config.prompts);
    const evalPrompts = prompts.eval.slice(0, config.eval.max_prompts ?? prompts.eval.length);
    if (values.bestOfN) {
      const info = await services.policy.getInfo({});
      const ctx = { config, services, latentShape: info.latentShape.map(Number) };
      for (const model of ["base", "policy"] as const) {
        const plain = await evaluateModel({ config, services }, model, evalPrompts, 0);
        const best = await bestOfN(ctx, evalPrompts, model);
        const mean = best.rewards.reduce((a, b) => a + b, 0) / best.rewards.length;
        console.log(
          JSON.stringify({
            model,
            best_of_n: config.best_of_n,
            mean_reward_best_of_n: mean,
            plain: plain.record.rewards,
          }),
        );
      }
      return;
    }
    console.log(`| model | ${config.eval.scorers.join(" | ")} |`);
    console.log(`|---|${config.eval.scorers.map(() => "---").join("|")}|`);
    for (const model of ["base", "policy"] as const) {
      const { record } = await evaluateModel({ config, services }, model, evalPrompts, 0);
      console.log(
        `| ${model} | ${config.eval.scorers.map((s) => record.rewards[s].mean.toFixed(4)).join(" | ")} |`,
      );
    }
  } finally {
    services.close();
  }
}

interface ServedRun {
  id: string;
  config: RunConfig;
  state: RunState;
  step: number;
  total: number;
  error: string;
  startedAt: number;
  reportPath: string;
  events: MetricsRecord[];
  controller: AbortController;
  listeners: Set<() => void>;
}

function trainerServiceOptions(): ServiceMainOptions<Record<never, FlagSpec>> {
  const runs = new Map<string, ServedRun>();
  const info = (r: ServedRun) => ({
    runId: r.id,
    state: r.state,
    step: BigInt(r.step),
    totalSteps: BigInt(r.total),
    runDir: resolveRunDir(r.config),
    error: r.error,
    startedAtMs: BigInt(r.startedAt),
    configHash: configHash(r.config),
    reportPath: r.reportPath,
  });
  const get = (id: string) => {
    const r = runs.get(id);
    if (!r) throw new NotFoundError(`run_id: no run "${id}"`);
    return r;
  };
  const notify = (r: ServedRun) => r.listeners.forEach((l) => l());
  return {
    name: "trainer",
    defaultPort: 50053,
    summary: "serves TrainerService: start RDPO runs, stream their progress, stop them",
    examples: ["deno task serve:trainer", "deno task serve:trainer --host 0.0.0.0 --port 50053"],
    setup(server) {
      server.addService(TrainerService, {
        startRun(req) {
          const config = parseConfig(req.config, "config");
          const id = `${config.method}-${configHash(config).slice(0, 8)}-${Date.now().toString(36)}`;
          const run: ServedRun = {
            id,
            config,
            state: RunState.RUNNING,
            step: 0,
            total: 0,
            error: "",
            startedAt: Date.now(),
            reportPath: "",
            events: [],
            controller: new AbortController(),
            listeners: new Set(),
          };
          runs.set(id, run);
          train(config, {
            resume: req.resume,
            progress: "none",
            signal: run.controller.signal,
            log: (line) => console.error(`[${id}] ${line}`),
            onRecord: (record, total) => {
              if (record.type === "step") {
                run.step = record.step;
                run.total = total;
              }
              run.events.push(record);
              notify(run);
            },
          }).then((r) => {
            run.state = run.controller.signal.aborted && r.steps < run.total
              ? RunState.STOPPED
              : RunState.SUCCEEDED;
            run.reportPath = r.reportPath ?? "";
          }).catch((e) => {
            run.state = RunState.FAILED;
            run.error = (e as Error).message;
          }).finally(() => notify(run));
          return { runId: id, runDir: resolveRunDir(config) };
        },
        getRun(req) {
          return { run: info(get(req.runId)) };
        },
        listRuns() {
          return { runs: [...runs.values()].map(info) };
        },
        stopRun(req) {
          const r = get(req.runId);
          if (r.state === RunState.RUNNING) {
            r.state = RunState.STOPPING;
            r.controller.abort();
          }
          return { run: info(r) };
        },
        async *streamProgress(req, ctx) {
          const r = get(req.runId);
          let sent = 0;
          for (;;) {
            while (sent < r.events.length) {
              const record = r.events[sent++];
              if (record.type === "step" && record.step < Number(req.fromStep)) continue;
              yield create(StreamProgressResponseSchema, {
                event: progressEventMessage(record, { runId: r.id, totalSteps: r.total, state: r.state }),
              });
            }
            if (![RunState.RUNNING, RunState.STOPPING, RunState.PENDING].includes(r.state)) {
              yield {
                event: {
                  runId: r.id,
                  step: BigInt(r.step),
                  totalSteps: BigInt(r.total),
                  state: r.state,
                  message: r.error,
                },
              };
              return;
            }
            await new Promise<void>((resolve) => {
              const wake = () => {
                r.listeners.delete(wake);
                resolve();
              };
              r.listeners.add(wake);
              ctx.signal.addEventListener("abort", wake, { once: true });
              ctx.serverClosing.addEventListener("abort", wake, { once: true });
            });
            if (ctx.signal.aborted || ctx.serverClosing.aborted) return;
          }
        },
      });
    },
  };
}

export const TRAIN_COMMAND: CommandSpec<typeof TRAIN_FLAGS> = {
  name: "train",
  summary: "runs RDPO (or D3PO) from a config: services, prompts, steps, checkpoints, report",
  description: "Service addresses, deadlines and everything else come from the config file " +
    "(services.policy, services.reward, ...); --set overrides single keys.",
  flags: TRAIN_FLAGS,
  examples: [
    "deno task train --config services/trainer/configs/rdpo_animals.yaml --report-to tensorboard",
    "deno task train --config services/trainer/configs/rdpo_animals.yaml --resume --set training.steps=40",
  ],
  run: (values) => trainCommand(values),
};

export const EVAL_COMMAND: CommandSpec<typeof EVAL_FLAGS> = {
  name: "eval",
  summary: "base vs tuned reward table on the held-out prompts, or step-wise best-of-N",
  flags: EVAL_FLAGS,
  examples: [
    "deno task eval --config services/trainer/configs/rdpo_animals.yaml",
    "deno task eval --config services/trainer/configs/best_of_n_animals.yaml --best-of-n",
  ],
  run: (values) => evalCommand(values),
};

/** `serve:trainer` as a command (help, README, `rdpo serve trainer`). */
export const TRAINER_SERVE_COMMAND = serviceCommand(trainerServiceOptions());

const COMMANDS: Record<string, CommandSpec> = {
  train: TRAIN_COMMAND as unknown as CommandSpec,
  eval: EVAL_COMMAND as unknown as CommandSpec,
  serve: TRAINER_SERVE_COMMAND as unknown as CommandSpec,
};

if (import.meta.main) {
  const [name, ...rest] = Deno.args;
  const command = COMMANDS[name];
  if (!command) {
    console.error(
      `main.ts: "${name ?? ""}" is not a command (train, eval, serve); see deno task rdpo --help`,
    );
    Deno.exit(2);
  }
  await runCommand(command, rest);
}
