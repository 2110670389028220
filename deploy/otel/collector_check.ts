/**
 * Consistency of an OpenTelemetry Collector config (nothing here can run the collector): every
 * pipeline is `signal[/name]`, uses only defined components, and every defined component is used.
 * Shared by deploy/otel (one host) and deploy/k8s/overlays/observability (in-cluster).
 */
export interface CollectorConfig {
  receivers: Record<string, unknown>;
  processors: Record<string, unknown>;
  exporters: Record<string, { endpoint?: string }>;
  service: { pipelines: Record<string, { receivers: string[]; processors?: string[]; exporters: string[] }> };
}

const KINDS = ["receivers", "processors", "exporters"] as const;

/** One message per problem; empty when the config hangs together. */
export function collectorProblems(c: CollectorConfig): string[] {
  const problems: string[] = [];
  const used = { receivers: new Set<string>(), processors: new Set<string>(), exporters: new Set<string>() };
  for (const [name, p] of Object.entries(c.service.pipelines)) {
    if (!/^(traces|metrics|logs)(\/.+)?$/.test(name)) problems.push(`pipeline ${name}: not signal[/name]`);
    for (const kind of KINDS) {
      for (const id of p[kind] ?? []) {
        if (!(id in c[kind])) problems.push(`pipeline ${name}: ${kind.slice(0, -1)} ${id} is not defined`);
        used[kind].add(id);
      }
    }
  }
  for (const kind of KINDS) {
    for (const id of Object.keys(c[kind])) {
      if (!used[kind].has(id)) problems.push(`${kind.slice(0, -1)} ${id} is defined but no pipeline uses it`);
    }
  }
  return problems;
}
