/**
 * A small kubelet for test/k8s_container_test.ts: turns the rendered manifests of one overlay into
 * `docker run` invocations on host networking, as Kubernetes would run their pods, and runs the
 * pods' probes. What it takes from the manifests, unchanged: each container's command, args, env
 * (literal values, `$(VAR)` expansion, fieldRef, secretKeyRef and configMapKeyRef), volume mounts
 * (ConfigMap and Secret files, emptyDir, PersistentVolumeClaims as host folders), securityContext's
 * user, group, read-only root filesystem, dropped capabilities and no-new-privileges, init containers (run in order, retried with back-off like the kubelet does),
 * startup/readiness/liveness probes (grpc, tcpSocket, httpGet, exec) with their timings, and
 * terminationGracePeriodSeconds for `docker stop`.
 *
 * What host networking forces it to change, and nothing else:
 *   - every declared containerPort gets a free loopback port per pod; env values and probes that
 *     name the port get that port;
 *   - a bind address of 0.0.0.0 in env becomes 127.0.0.1 (tests talk to loopback only);
 *   - cluster DNS: `name[.ns[.svc[.cluster.local]]]:port` of a Service (and a StatefulSet pod's
 *     `pod.name...`) in args, env and ConfigMap files becomes the selected pods' loopback
 *     addresses: one address, or in a ConfigMap file a YAML list `[a, b]` when a headless Service
 *     has several pods (what its A records give a client).
 */
import { join } from "node:path";
import type { IContainer, IPodSpec, IProbe } from "kubernetes-models/v1";
import { checkHealth } from "../../tools/healthcheck.ts";
import { findObject, type K8sObject, podTemplate } from "../../deploy/k8s/manifests.ts";
import { docker, freePorts } from "./container_env.ts";

/** One pod of a workload: `reward-0`, `policy-1`, `trainer-0`. */
export interface Pod {
  name: string;
  workload: K8sObject;
  spec: IPodSpec;
  labels: Record<string, string>;
  /** containerPort -> loopback port of this pod. */
  ports: Map<number, number>;
}

/** The pods of a Deployment, StatefulSet (replicas) or Job (one), with their loopback ports. */
export function podsOf(workload: K8sObject, replicas?: number): Pod[] {
  const template = podTemplate(workload);
  if (!template?.spec) throw new Error(`${workload.kind}/${workload.metadata.name} has no pod template`);
  const n = replicas ?? (workload.kind === "Job" ? 1 : workload.spec.replicas ?? 1);
  return Array.from({ length: n }, (_, i) => {
    const declared = template.spec!.containers.flatMap((c) => (c.ports ?? []).map((p) => p.containerPort));
    const free = freePorts(declared.length);
    return {
      name: `${workload.metadata.name}-${i}`,
      workload,
      spec: template.spec!,
      labels: template.metadata?.labels ?? {},
      ports: new Map(declared.map((p, j) => [p, free[j]])),
    };
  });
}

/** Cluster DNS over loopback: Service (and StatefulSet pod) names -> the pods' addresses. */
export class LoopbackDns {
  readonly #names = new Map<string, string[]>();

  constructor(objects: K8sObject[], pods: Pod[], namespace: string) {
    const aliases = (name: string) => [
      name,
      `${name}.${namespace}`,
      `${name}.${namespace}.svc`,
      `${name}.${namespace}.svc.cluster.local`,
    ];
    for (const svc of objects.filter((o) => o.kind === "Service")) {
      const selected = pods.filter((p) =>
        Object.entries(svc.spec.selector as Record<string, string>).every(([k, v]) => p.labels[k] === v)
      );
      for (const port of svc.spec.ports) {
        const addresses = selected.map((p) =>
          `127.0.0.1:${p.ports.get(containerPortOf(p, port.targetPort))}`
        );
        for (const alias of aliases(svc.metadata.name)) this.#names.set(`${alias}:${port.port}`, addresses);
        // A StatefulSet's pods behind its governing headless Service: pod.service.ns.svc...
        for (const [i, p] of selected.entries()) {
          if (p.workload.kind !== "StatefulSet" || p.workload.spec.serviceName !== svc.metadata.name) {
            continue;
          }
          for (const alias of aliases(svc.metadata.name)) {
            this.#names.set(`${p.name}.${alias}:${port.port}`, [addresses[i]]);
          }
        }
      }
    }
  }

  /** The loopback addresses behind `host:port` (with or without `dns:///`), or undefined. */
  resolve(address: string): string[] | undefined {
    return this.#names.get(address.replace(/^dns:\/\/\//, ""));
  }

  /** Replaces every known `[dns:///]host:port` in `text`; several addresses: `list` or the first. */
  translate(text: string, several: "first" | "yaml-list"): string {
    return text.replace(/(dns:\/\/\/)?([a-z0-9][a-z0-9.-]*):(\d+)/g, (whole) => {
      const addresses = this.resolve(whole);
      if (!addresses || addresses.length === 0) return whole;
      if (addresses.length === 1 || several === "first") return addresses[0];
      return `[${addresses.join(", ")}]`;
    });
  }
}

function containerPortOf(pod: Pod, target: number | string): number {
  if (typeof target === "number") return target;
  for (const c of pod.spec.containers) {
    const p = (c.ports ?? []).find((x) => x.name === target);
    if (p) return p.containerPort;
  }
  throw new Error(`${pod.name}: no container port named ${target}`);
}

/** A container of a pod as `docker run` arguments (without the image's name placement). */
export interface DockerContainer {
  name: string;
  args: string[];
  /** The loopback port a probe's port maps to. */
  probePort(port: number | string): number;
}

export interface KubeletOptions {
  objects: K8sObject[];
  dns: LoopbackDns;
  namespace: string;
  image: string;
  /** Folder for this run's volumes (ConfigMap/Secret files, emptyDirs, claims). */
  root: string;
  /** Extra env for every container, added after the manifest's (the test's OTLP receiver). */
  extraEnv?: Record<string, string>;
  /** Prefix of container names (removed by the test's cleanup). */
  prefix: string;
}

/** Builds the `docker run` arguments of `container` in `pod`, writing its volumes under `root`. */
export async function dockerRunArgs(
  pod: Pod,
  container: IContainer,
  o: KubeletOptions,
): Promise<DockerContainer> {
  const name = `${o.prefix}-${pod.name}-${container.name}`;
  const args = ["--name", name, "--network", "host"];
  const uid = Deno.uid();
  const sc = { ...pod.spec.securityContext, ...container.securityContext };
  // As root, run as the manifest's user (its volumes are opened up for it); anyone else runs the
  // containers as themselves, so the files they write can be cleaned up.
  if (uid === 0 || uid === null) {
    if (sc.runAsUser !== undefined) args.push("--user", `${sc.runAsUser}:${sc.runAsGroup ?? sc.runAsUser}`);
  } else args.push("--user", `${uid}:${Deno.gid()}`);
  if (sc.allowPrivilegeEscalation === false) args.push("--security-opt", "no-new-privileges");
  if (sc.readOnlyRootFilesystem) args.push("--read-only");
  for (const cap of sc.capabilities?.drop ?? []) args.push("--cap-drop", cap);

  const env = new Map<string, string>();
  const expand = (s: string) => s.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (w, v) => env.get(v) ?? w);
  const remap = (value: string) => {
    const port = Number(value);
    if (/^\d+$/.test(value) && pod.ports.has(port)) return String(pod.ports.get(port));
    return value === "0.0.0.0" ? "127.0.0.1" : o.dns.translate(value, "first");
  };
  for (const e of container.env ?? []) {
    let value: string;
    if (e.value !== undefined) value = expand(e.value);
    else if (e.valueFrom?.fieldRef) value = fieldRef(pod, e.valueFrom.fieldRef.fieldPath, o.namespace);
    else if (e.valueFrom?.secretKeyRef) {
      const ref = e.valueFrom.secretKeyRef;
      value = new TextDecoder().decode(secretData(findObject(o.objects, "Secret", ref.name!))[ref.key]);
    } else if (e.valueFrom?.configMapKeyRef) {
      const ref = e.valueFrom.configMapKeyRef;
      value = findObject(o.objects, "ConfigMap", ref.name!).data[ref.key];
    } else throw new Error(`${name}: env ${e.name}: unsupported source ${JSON.stringify(e.valueFrom)}`);
    env.set(e.name, remap(value));
  }
  for (const [k, v] of Object.entries(o.extraEnv ?? {})) env.set(k, v);
  for (const [k, v] of env) args.push("-e", `${k}=${v}`);

  for (const m of container.volumeMounts ?? []) {
    if (m.subPath) throw new Error(`${name}: subPath mounts are not supported here`);
    const volume = (pod.spec.volumes ?? []).find((v) => v.name === m.name);
    if (!volume) throw new Error(`${name}: mount ${m.name} has no volume`);
    const source = await volumeDir(pod, volume, o);
    args.push("-v", `${source}:${m.mountPath}${m.readOnly ? ":ro" : ""}`);
  }
  if (container.workingDir) args.push("--workdir", container.workingDir);
  const command = container.command ?? [];
  if (command.length > 0) args.push("--entrypoint", command[0]);
  const rest = [...command.slice(1), ...(container.args ?? [])].map((a) =>
    o.dns.translate(expand(a), "first")
  );
  args.push(o.image, ...rest);
  return {
    name,
    args,
    probePort(port) {
      const p = typeof port === "number" ? port : containerPortOf(pod, port);
      const mapped = pod.ports.get(p);
      if (mapped === undefined) {
        throw new Error(`${name}: probe port ${port} is not a declared containerPort`);
      }
      return mapped;
    },
  };
}

function fieldRef(pod: Pod, path: string, namespace: string): string {
  switch (path) {
    case "metadata.name":
      return pod.name;
    case "metadata.namespace":
      return namespace;
    case "status.podIP":
    case "status.hostIP":
      return "127.0.0.1";
    default:
      throw new Error(`${pod.name}: fieldRef ${path} is not supported here`);
  }
}

function secretData(secret: K8sObject): Record<string, Uint8Array> {
  const out: Record<string, Uint8Array> = {};
  for (const [k, v] of Object.entries((secret.data ?? {}) as Record<string, string>)) {
    out[k] = Uint8Array.from(atob(v), (c) => c.charCodeAt(0));
  }
  for (const [k, v] of Object.entries((secret.stringData ?? {}) as Record<string, string>)) {
    out[k] = new TextEncoder().encode(v);
  }
  return out;
}

/** The host folder behind a pod volume; files of ConfigMaps (addresses translated) and Secrets. */
async function volumeDir(pod: Pod, volume: NonNullable<IPodSpec["volumes"]>[number], o: KubeletOptions) {
  const files = async (dir: string, data: Record<string, Uint8Array>) => {
    await Deno.mkdir(dir, { recursive: true });
    for (const [k, v] of Object.entries(data)) await Deno.writeFile(join(dir, k), v, { mode: 0o644 });
    await Deno.chmod(dir, 0o755);
    return dir;
  };
  if (volume.configMap) {
    const cm = findObject(o.objects, "ConfigMap", volume.configMap.name!);
    const data = Object.fromEntries(
      Object.entries(cm.data as Record<string, string>).map((
        [k, v],
      ) => [k, new TextEncoder().encode(o.dns.translate(v, "yaml-list"))]),
    );
    return await files(join(o.root, "pods", pod.name, volume.name), data);
  }
  if (volume.secret) {
    return await files(
      join(o.root, "pods", pod.name, volume.name),
      secretData(findObject(o.objects, "Secret", volume.secret.secretName!)),
    );
  }
  let dir: string;
  if (volume.emptyDir) dir = join(o.root, "pods", pod.name, volume.name);
  else if (volume.persistentVolumeClaim) {
    findObject(o.objects, "PersistentVolumeClaim", volume.persistentVolumeClaim.claimName);
    dir = join(o.root, "claims", volume.persistentVolumeClaim.claimName);
  } else throw new Error(`${pod.name}: volume ${volume.name}: unsupported source`);
  await Deno.mkdir(dir, { recursive: true });
  // The pod's user writes it (fsGroup would make it group-writable in Kubernetes).
  await Deno.chmod(dir, 0o777);
  return dir;
}

/** One run of a probe: true when it passes. */
export async function probeOnce(c: DockerContainer, probe: IProbe): Promise<boolean> {
  const timeoutMs = (probe.timeoutSeconds ?? 1) * 1000;
  try {
    if (probe.grpc) {
      const address = `127.0.0.1:${c.probePort(probe.grpc.port)}`;
      return (await checkHealth(address, probe.grpc.service ?? "", timeoutMs)) === "SERVING";
    }
    if (probe.tcpSocket) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: c.probePort(probe.tcpSocket.port) });
      conn.close();
      return true;
    }
    if (probe.httpGet) {
      const url = `http://127.0.0.1:${c.probePort(probe.httpGet.port)}${probe.httpGet.path ?? "/"}`;
      const r = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
      await r.body?.cancel();
      return r.status >= 200 && r.status < 400;
    }
    if (probe.exec) return (await docker(["exec", c.name, ...probe.exec.command!], timeoutMs)).code === 0;
  } catch {
    return false;
  }
  throw new Error(`${c.name}: probe without a handler`);
}

/**
 * Runs a probe the kubelet's way until it passes: after initialDelaySeconds, every periodSeconds,
 * at most failureThreshold failures. Returns the number of tries; throws when the budget is spent.
 */
export async function waitForProbe(c: DockerContainer, probe: IProbe, what: string): Promise<number> {
  const period = (probe.periodSeconds ?? 10) * 1000;
  const failures = probe.failureThreshold ?? 3;
  await new Promise((r) => setTimeout(r, (probe.initialDelaySeconds ?? 0) * 1000));
  for (let i = 1; i <= failures; i++) {
    if (await probeOnce(c, probe)) return i;
    if (i < failures) await new Promise((r) => setTimeout(r, period));
  }
  throw new Error(`${c.name}: ${what} probe failed ${failures} times (every ${period / 1000} s)`);
}
