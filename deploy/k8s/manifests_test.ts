/**
 * Every overlay renders with `kubectl kustomize` (each binary in RDPO_KUBECTL, identically), every
 * rendered object validates against the Kubernetes schemas (kubernetes-models), and the manifests
 * hang together the way the API server would only find out at run time: mounts name volumes, volumes
 * name objects in the render, Services select pods and target declared ports, probes hit declared
 * ports, the trainer's ConfigMap is a config the trainer accepts, every server passes the off-loopback
 * guard of lib/rpc/security.ts as bound (0.0.0.0) and the trainer's token has the role its RPCs need.
 * Skips, printing one line, without kubectl.
 */
import { parse as parseYaml } from "yaml";
import type { IContainer, IPodSpec } from "kubernetes-models/v1";
import { assert, assertEquals, assertThrows } from "../../lib/testing/assert.ts";
import { accessOf } from "../../lib/rpc/access.ts";
import { authorize, TokenTable, TokenTableError } from "../../lib/rpc/auth.ts";
import { parseFlags } from "../../lib/rpc/flags.ts";
import { commonFlags } from "../../lib/rpc/main.ts";
import { isLoopback, unprotectedBindProblem } from "../../lib/rpc/security.ts";
import { parseConfig } from "../../services/trainer/config.ts";
import { type CollectorConfig, collectorProblems } from "../otel/collector_check.ts";
import { parseCommand } from "../../lib/cli/command.ts";
import {
  canonical,
  findObject,
  K8S_VALIDATE_COMMAND,
  type K8sObject,
  kubectlBinaries,
  kubectlSkipReason,
  objectId,
  type Overlay,
  OVERLAYS,
  parseObjects,
  podTemplate,
  renderOverlay,
  validateObjects,
} from "./manifests.ts";

const skipReason = await kubectlSkipReason();
if (skipReason) console.log(`skip: k8s manifests: ${skipReason}`);
const ALL: Overlay[] = ["base", ...OVERLAYS];
const GPU_OVERLAYS: Overlay[] = ["base", "multi-gpu", "observability"];

const rendered = new Map<Overlay, Promise<K8sObject[]>>();
function render(overlay: Overlay): Promise<K8sObject[]> {
  if (!rendered.has(overlay)) rendered.set(overlay, renderOverlay(overlay));
  return rendered.get(overlay)!;
}

function containersOf(spec: IPodSpec): IContainer[] {
  return [...(spec.initContainers ?? []), ...spec.containers];
}

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, ignore: skipReason !== null, sanitizeResources: false, fn });

test("k8s: every overlay renders, identically with every kubectl, and every object validates", async () => {
  const bins = kubectlBinaries();
  for (const overlay of ALL) {
    const first = await render(overlay);
    assert(first.length > 0, `${overlay} renders objects`);
    assertEquals(validateObjects(first), [], `${overlay}: schema problems`);
    for (const bin of bins.slice(1)) {
      assertEquals(
        canonical(await renderOverlay(overlay, bin)),
        canonical(first),
        `${overlay}: ${bin} vs ${bins[0]}`,
      );
    }
    const ids = first.map(objectId);
    assertEquals(new Set(ids).size, ids.length, `${overlay}: no object twice`);
    for (const o of first) {
      if (o.kind !== "Namespace") assertEquals(o.metadata.namespace, "rdpo", `${objectId(o)} namespace`);
    }
  }
});

test("k8s: the validator rejects a broken object (it is not a pass-through)", async () => {
  const objects = await render("base");
  const policy = structuredClone(findObject(objects, "StatefulSet", "policy"));
  policy.spec.replicas = "two";
  policy.spec.template.spec.containers[0].startupProbe.grpc.port = "grpc";
  const problems = validateObjects([policy, { apiVersion: "v9", kind: "Nope", metadata: { name: "x" } }]);
  assertEquals(problems.length, 2);
  assert(problems[0].includes("replicas must be integer"), problems[0]);
  assert(problems[1].includes("no schema for v9 Nope"), problems[1]);
  assertEquals(parseObjects("---\n{}\n---\n", "empty").length, 0);
});

test("k8s: mounts, volumes, Services, probes and env refer to things that exist", async () => {
  for (const overlay of ALL) {
    const objects = await render(overlay);
    const names = (kind: string) =>
      new Set(objects.filter((o) => o.kind === kind).map((o) => o.metadata.name));
    const [configMaps, secrets, claims] = [
      names("ConfigMap"),
      names("Secret"),
      names("PersistentVolumeClaim"),
    ];
    const workloads = objects.filter((o) => podTemplate(o));
    for (const w of workloads) {
      const where = `${overlay} ${objectId(w)}`;
      const spec = podTemplate(w)!.spec!;
      const volumes = new Map((spec.volumes ?? []).map((v) => [v.name, v]));
      for (const v of volumes.values()) {
        if (v.configMap) assert(configMaps.has(v.configMap.name!), `${where}: ConfigMap ${v.configMap.name}`);
        if (v.secret) assert(secrets.has(v.secret.secretName!), `${where}: Secret ${v.secret.secretName}`);
        if (v.persistentVolumeClaim) {
          assert(
            claims.has(v.persistentVolumeClaim.claimName),
            `${where}: PVC ${v.persistentVolumeClaim.claimName}`,
          );
        }
      }
      const mounted = new Set<string>();
      for (const c of containersOf(spec)) {
        for (const m of c.volumeMounts ?? []) {
          assert(volumes.has(m.name), `${where} ${c.name}: mount ${m.name} has a volume`);
          mounted.add(m.name);
        }
        const ports = new Set((c.ports ?? []).map((p) => p.containerPort));
        for (const probe of [c.startupProbe, c.readinessProbe, c.livenessProbe]) {
          const port = probe?.grpc?.port ?? probe?.tcpSocket?.port ?? probe?.httpGet?.port;
          if (port !== undefined) {
            assert(ports.has(Number(port)), `${where} ${c.name}: probe port ${port} declared`);
          }
        }
        // Paths the services read from env point into a mounted folder.
        for (const e of c.env ?? []) {
          if (!/_(FILE|CONFIG|CERT|KEY|CA)$/.test(e.name) || !e.value) continue;
          assert(
            (c.volumeMounts ?? []).some((m) => e.value!.startsWith(`${m.mountPath}/`)),
            `${where} ${c.name}: ${e.name}=${e.value} is under a mount`,
          );
        }
      }
      assertEquals([...volumes.keys()].filter((v) => !mounted.has(v)), [], `${where}: volumes nobody mounts`);
    }
    for (const svc of objects.filter((o) => o.kind === "Service")) {
      const selector: Record<string, string> = svc.spec.selector;
      const pods = workloads.filter((w) =>
        Object.entries(selector).every(([k, v]) => podTemplate(w)!.metadata?.labels?.[k] === v)
      );
      assert(pods.length > 0, `${overlay} ${objectId(svc)} selects a workload`);
      for (const port of svc.spec.ports) {
        const declared = pods.flatMap((w) => podTemplate(w)!.spec!.containers.flatMap((c) => c.ports ?? []));
        assert(
          declared.some((p) => p.name === port.targetPort || p.containerPort === port.targetPort),
          `${overlay} ${objectId(svc)}: targetPort ${port.targetPort} is a container port`,
        );
      }
    }
  }
});

test("k8s: GPUs, probes, security contexts and limits", async () => {
  for (const overlay of ALL) {
    const objects = await render(overlay);
    const policy = findObject(objects, "StatefulSet", "policy");
    const container = policy.spec.template.spec.containers[0] as IContainer;
    const gpu = container.resources?.limits?.["nvidia.com/gpu"];
    const env = Object.fromEntries((container.env ?? []).map((e) => [e.name, e.value]));
    if (GPU_OVERLAYS.includes(overlay)) {
      assertEquals(gpu, 1, `${overlay}: one GPU per policy replica`);
      assert(policy.spec.template.spec.tolerations?.length > 0, `${overlay}: GPU toleration`);
      assert(String(env.NVIDIA_DRIVER_CAPABILITIES).split(",").includes("graphics"), `${overlay}: graphics`);
      assertEquals(env.POLICY_BACKEND, "webgpu");
    } else {
      assertEquals(gpu, undefined, `${overlay}: no GPU`);
      assertEquals(policy.spec.template.spec.nodeSelector, undefined);
      assertEquals([env.POLICY_MODEL_DIR, env.POLICY_BACKEND], ["/opt/rdpo/models/tiny", "wasm"]);
    }
    assertEquals(
      findObject(objects, "Service", "policy").spec.clusterIP,
      "None",
      "policy Service is headless",
    );
    assertEquals(findObject(objects, "Service", "reward-headless").spec.clusterIP, "None");
    for (const [kind, name] of [["StatefulSet", "policy"], ["Deployment", "reward"]]) {
      const c = findObject(objects, kind, name).spec.template.spec.containers[0] as IContainer;
      for (const probe of [c.startupProbe, c.readinessProbe, c.livenessProbe]) {
        assert(probe?.grpc?.port, `${overlay} ${kind}/${name}: native gRPC probes`);
      }
      assertEquals(
        c.readinessProbe?.grpc?.service,
        `rdpo.v1.${name[0].toUpperCase()}${name.slice(1)}Service`,
      );
    }
    for (const w of objects.filter((o) => podTemplate(o))) {
      const spec = podTemplate(w)!.spec!;
      const rdpo = spec.containers.some((c) => c.image?.includes("rdpo-services"));
      assert(spec.securityContext?.runAsNonRoot, `${overlay} ${objectId(w)}: runAsNonRoot`);
      for (const c of containersOf(spec)) {
        assertEquals(c.securityContext?.allowPrivilegeEscalation, false, `${objectId(w)} ${c.name}`);
        assertEquals(c.securityContext?.capabilities?.drop, ["ALL"], `${objectId(w)} ${c.name}`);
        assert(
          c.resources?.requests?.memory && c.resources?.limits?.memory,
          `${objectId(w)} ${c.name}: memory`,
        );
        if (rdpo) {
          assert(c.image?.includes("rdpo-services"), `${objectId(w)} ${c.name}: the services' image`);
          assert(c.securityContext?.readOnlyRootFilesystem, `${objectId(w)} ${c.name}: read-only root`);
        }
      }
    }
    for (const pdb of ["policy", "reward"]) findObject(objects, "PodDisruptionBudget", pdb);
    assertEquals(findObject(objects, "HorizontalPodAutoscaler", "reward").spec.scaleTargetRef.name, "reward");
  }
  const replicas = async (o: Overlay) => findObject(await render(o), "StatefulSet", "policy").spec.replicas;
  assertEquals([await replicas("base"), await replicas("cpu-dev")], [1, 2]);
  assert((await replicas("multi-gpu")) > 1, "multi-gpu runs several policy replicas");
  assertEquals(
    await replicas("observability"),
    await replicas("multi-gpu"),
    "observability builds on multi-gpu",
  );
});

test("k8s: the trainer ConfigMap is a config the trainer accepts, addressing the headless Services", async () => {
  for (const overlay of ALL) {
    const objects = await render(overlay);
    const text: string = findObject(objects, "ConfigMap", "trainer-config").data["config.yaml"];
    const config = parseConfig(JSON.stringify(parseYaml(text)), `${overlay} trainer-config`);
    // dns:/// + the headless Services: one A record per ready pod (round_robin / data parallel).
    assertEquals(config.services.policy, "dns:///policy.rdpo.svc.cluster.local:50052");
    assertEquals(config.services.reward, "dns:///reward-headless.rdpo.svc.cluster.local:50051");
    assert(
      config.run_dir?.startsWith("runs/"),
      `${overlay}: run_dir on the runs volume (/opt/rdpo/runs -> /runs)`,
    );
    const job = findObject(objects, "Job", "trainer").spec.template.spec as IPodSpec;
    const trainer = job.containers[0];
    assert(trainer.args?.includes("--resume"), "a restarted trainer pod resumes");
    const configEnv = trainer.env?.find((e) => e.name === "TRAINER_CONFIG")?.value;
    const mount = trainer.volumeMounts?.find((m) => configEnv?.startsWith(`${m.mountPath}/`));
    assertEquals(job.volumes?.find((v) => v.name === mount?.name)?.configMap?.name, "trainer-config");
    assert(trainer.volumeMounts?.some((m) => m.mountPath === "/runs"), "run folders on a volume");
  }
  const cpuDev = parseYaml(
    findObject(await render("cpu-dev"), "ConfigMap", "trainer-config").data["config.yaml"],
  );
  assertEquals(cpuDev.training.steps, 2, "cpu-dev trains 2 steps");
});

test("k8s observability: the collector config hangs together and its targets are Services of the render", async () => {
  const objects = await render("observability");
  const collector = parseYaml(
    findObject(objects, "ConfigMap", "otel-collector-config").data["collector.yaml"],
  );
  assertEquals(collectorProblems(collector as CollectorConfig), []);
  // host:port of a Service in the render (name.rdpo.svc.cluster.local), on a port it exposes.
  const servicePort = (address: string) => {
    const [host, port] = address.split(":");
    const name = host.replace(/\.rdpo\.svc\.cluster\.local$/, "");
    const svc = findObject(objects, "Service", name);
    assert(
      svc.spec.ports.some((p: { port: number }) => p.port === Number(port)),
      `${address}: a port of ${name}`,
    );
  };
  servicePort(collector.exporters["otlp/jaeger"].endpoint);
  for (const job of collector.receivers.prometheus.config.scrape_configs) {
    for (const sd of job.dns_sd_configs) {
      for (const name of sd.names) {
        const svc = findObject(objects, "Service", name.replace(/\.rdpo\.svc\.cluster\.local$/, ""));
        assertEquals(svc.spec.clusterIP, "None", `${name}: headless, one A record per pod`);
        servicePort(`${name}:${sd.port}`);
      }
    }
  }
  const prometheus = parseYaml(findObject(objects, "ConfigMap", "prometheus-config").data["prometheus.yml"]);
  for (const target of prometheus.scrape_configs[0].static_configs[0].targets) servicePort(target);
  const otlpPort = Number(collector.receivers.otlp.protocols.http.endpoint.split(":")[1]);
  for (const [kind, name] of [["Deployment", "reward"], ["StatefulSet", "policy"], ["Job", "trainer"]]) {
    const c = findObject(objects, kind, name).spec.template.spec.containers[0] as IContainer;
    const env = Object.fromEntries((c.env ?? []).map((e) => [e.name, e.value]));
    assertEquals(env.OTEL_DENO, "true", `${name} exports over OTLP`);
    servicePort(new URL(env.OTEL_EXPORTER_OTLP_ENDPOINT!).host);
    assertEquals(new URL(env.OTEL_EXPORTER_OTLP_ENDPOINT!).port, String(otlpPort));
  }
});

/** The text of the file at `path` in container `c`: a key of the Secret or ConfigMap mounted above it. */
function mountedFile(objects: K8sObject[], spec: IPodSpec, c: IContainer, path: string): string | undefined {
  const mount = (c.volumeMounts ?? []).find((m) => path.startsWith(`${m.mountPath}/`));
  const volume = spec.volumes?.find((v) => v.name === mount?.name);
  if (!mount || !volume) return undefined;
  const key = path.slice(mount.mountPath.length + 1);
  const source = volume.secret
    ? findObject(objects, "Secret", volume.secret.secretName!)
    : volume.configMap
    ? findObject(objects, "ConfigMap", volume.configMap.name!)
    : undefined;
  const base64 = source?.data?.[key];
  return source?.stringData?.[key] ?? (base64 === undefined ? undefined : atob(base64));
}

const SERVERS = [
  { kind: "Deployment", name: "reward", prefix: "REWARD", port: 50051 },
  { kind: "StatefulSet", name: "policy", prefix: "POLICY", port: 50052 },
] as const;
/** Overlays whose Secrets are meant to run as rendered (the others ship placeholders to replace). */
const WORKING_SECRETS: Overlay[] = ["cpu-dev"];

// The container test binds 127.0.0.1 (host networking), which the guard lets through: check here the
// flags the pods would really start with, on the address they bind in a cluster.
test("k8s security: every server passes the off-loopback guard as bound (0.0.0.0), with tokens, no --insecure", async () => {
  for (const overlay of ALL) {
    const objects = await render(overlay);
    for (const server of SERVERS) {
      const where = `${overlay} ${server.kind}/${server.name}`;
      const spec = podTemplate(findObject(objects, server.kind, server.name))!.spec!;
      const c = spec.containers[0];
      const env = new Map((c.env ?? []).filter((e) => e.value !== undefined).map((e) => [e.name, e.value!]));
      // The image's entrypoint takes the service name first; the rest would be the service's flags.
      const { values } = parseFlags(
        c.args!.slice(1),
        commonFlags(server.prefix, server.port),
        (n) => env.get(n),
      );
      assertEquals(values.host, "0.0.0.0", `${where}: binds every interface`);
      assert(!isLoopback(values.host));
      assertEquals(
        unprotectedBindProblem(values, values.host),
        undefined,
        `${where}: the guard lets it start`,
      );
      assertEquals(values.insecure, false, `${where}: no --insecure (tokens instead)`);
      // Not vacuous: without the token file the same flags are refused.
      assert(unprotectedBindProblem({ ...values, authTokensFile: undefined }, values.host), where);
      const file = values.authTokensFile!;
      const volume = spec.volumes?.find((v) =>
        v.name === c.volumeMounts?.find((m) => file.startsWith(`${m.mountPath}/`))?.name
      );
      assertEquals(volume?.secret?.secretName, "rdpo-auth", `${where}: ${file} from the Secret rdpo-auth`);
      const text = mountedFile(objects, spec, c, file);
      assert(text !== undefined, `${where}: ${file} is a key of rdpo-auth`);
      if (WORKING_SECRETS.includes(overlay)) {
        assert(TokenTable.parse(text, file).size > 0, `${where}: a token table with tokens`);
      } else {
        // Secure by default: the placeholder is not a usable table, so nothing starts until it is replaced.
        assertThrows(() => TokenTable.parse(text, file), TokenTableError, "shorter than 16 characters");
      }
    }
  }
});

test("k8s security: the trainer sends a token of role train; probes and init containers need none", async () => {
  const trainerCalls = [
    ["rdpo.v1.PolicyService", "TrainStep"],
    ["rdpo.v1.PolicyService", "ApplyGradients"],
    ["rdpo.v1.PolicyService", "LoadAdapter"],
    ["rdpo.v1.PolicyService", "SampleCandidates"],
    ["rdpo.v1.RewardService", "Score"],
  ];
  // Kubernetes' gRPC probes and the init containers' healthcheck send no token.
  for (const method of ["Check", "Watch"]) assertEquals(accessOf("grpc.health.v1.Health", method), "public");
  for (const overlay of ALL) {
    const objects = await render(overlay);
    const job = podTemplate(findObject(objects, "Job", "trainer"))!.spec!;
    const trainer = job.containers[0];
    const tokenFile = trainer.env?.find((e) => e.name === "RDPO_CLIENT_TOKEN_FILE")?.value;
    assert(tokenFile, `${overlay}: the trainer has RDPO_CLIENT_TOKEN_FILE`);
    const token = mountedFile(objects, job, trainer, tokenFile)?.trim();
    assert(token && !/\s/.test(token), `${overlay}: ${tokenFile} is one token from a mounted Secret`);
    // The trainer sees its own token, not the servers' table.
    assert(
      !job.volumes?.some((v) => v.secret?.secretName === "rdpo-auth"),
      `${overlay}: no rdpo-auth in the Job`,
    );
    const serverTable = (() => {
      const reward = podTemplate(findObject(objects, "Deployment", "reward"))!.spec!;
      return mountedFile(objects, reward, reward.containers[0], "/etc/rdpo/auth/tokens")!;
    })();
    if (!WORKING_SECRETS.includes(overlay)) {
      assertEquals(token, "REPLACE-ME", `${overlay}: a placeholder, documented as one`);
      continue;
    }
    const table = TokenTable.parse(serverTable, `${overlay} rdpo-auth`);
    const options = { tokens: () => table, access: accessOf };
    for (const [service, method] of trainerCalls) {
      const decision = authorize(options, service, method, `Bearer ${token}`);
      assert(decision.ok, `${overlay}: the trainer may call ${method}: ${JSON.stringify(decision)}`);
      assertEquals(decision.caller, "trainer");
      assertEquals(authorize(options, service, method, undefined).ok, false, `${method} needs a token`);
    }
    // Least privilege: role train, not admin.
    assertEquals(authorize(options, "rdpo.v1.PolicyService", "SaveAdapter", `Bearer ${token}`).ok, false);
  }
});

// Not behind kubectl: loading the validators is enough to print the warning.
Deno.test("k8s: loading manifests.ts prints no third-party deprecation warning (punycode, DEP0040)", async () => {
  const load = async (code: string) => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["eval", "--ext=ts", code],
      cwd: new URL("../..", import.meta.url).pathname,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    assert(out.success, text);
    return text;
  };
  const quiet = await load(
    `const m = await import("./deploy/k8s/manifests.ts"); console.log(m.validateObjects([]).length);`,
  );
  assert(!quiet.includes("DEP0040") && !quiet.includes("DeprecationWarning"), quiet);
  // The control: imported without the scoped switch, kubernetes-models does print it.
  const loud = await load(`await import("kubernetes-models/v1");`);
  assert(loud.includes("DEP0040"), `kubernetes-models no longer warns: drop importQuietly\n${loud}`);
  // The switch is off again after the import: other deprecations still print.
  const after = await load(
    `import process from "node:process"; await import("./deploy/k8s/manifests.ts"); ` +
      `process.emitWarning("x", "DeprecationWarning", "DEP9999");`,
  );
  assert(after.includes("DEP9999") && !after.includes("DEP0040"), after);
});

// Not behind kubectl: the command line of `deno task k8s:validate` (lib/cli/command.ts).
Deno.test("k8s:validate: OVERLAY positionals, --kubectl beats RDPO_KUBECTL beats the default", () => {
  const parse = (args: string[], env: Record<string, string> = {}) =>
    parseCommand(K8S_VALIDATE_COMMAND, args, (name) => env[name]);
  const plain = parse([]);
  assert(plain.kind === "run");
  assertEquals([plain.values.kubectl, plain.positionals], ["kubectl", []]);
  const env = parse(["cpu-dev"], { RDPO_KUBECTL: "/opt/k120/kubectl:kubectl" });
  assert(env.kind === "run");
  assertEquals([env.values.kubectl, env.sources.kubectl, env.positionals], [
    "/opt/k120/kubectl:kubectl",
    "env RDPO_KUBECTL",
    ["cpu-dev"],
  ]);
  assertEquals(kubectlBinaries(env.values.kubectl), ["/opt/k120/kubectl", "kubectl"]);
  const flag = parse(["--kubectl", "k5", "base", "multi-gpu"], { RDPO_KUBECTL: "k1" });
  assert(flag.kind === "run");
  assertEquals([flag.values.kubectl, flag.positionals], ["k5", ["base", "multi-gpu"]]);
  const bad = parse(["--kubctl", "x"]);
  assert(bad.kind === "exit");
  assertEquals([bad.code, bad.stderr], [
    2,
    "k8s:validate: --kubctl: unknown flag; did you mean --kubectl?\n",
  ]);
});

Deno.test("k8s:validate: an unknown overlay or a kubectl that is not there is one line, exit 2", async () => {
  const run = async (args: string[]) => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "deploy/k8s/manifests.ts", ...args],
      cwd: new URL("../..", import.meta.url).pathname,
      env: { NO_COLOR: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const err = new TextDecoder().decode(out.stderr).trimEnd().split("\n");
    return { code: out.code, last: err.at(-1) ?? "", lines: err.length };
  };
  const overlay = await run(["no-such-overlay"]);
  assertEquals([overlay.code, overlay.lines], [2, 2], overlay.last); // the settings line, then the error
  assertEquals(
    overlay.last,
    `k8s:validate: overlay "no-such-overlay" is not one of base, ${OVERLAYS.join(", ")}`,
  );
  const missing = await run(["--kubectl", "/no/such/kubectl", "base"]);
  assertEquals([missing.code, missing.lines], [2, 2], missing.last);
  assert(
    missing.last.startsWith("k8s:validate: --kubectl: /no/such/kubectl version --client failed"),
    missing.last,
  );
});
