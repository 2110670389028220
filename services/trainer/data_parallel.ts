/**
 * The pure part of data-parallel RDPO (issue 18): which prompts of a step's global batch each policy
 * replica samples, and how the replicas' LoRA gradients become the one update every replica applies.
 *
 * Both are defined over the GLOBAL batch, never over the replica count P, so a run gives the same
 * adapter with any P (and a run resumed with another P stays bit-identical):
 *   - a shard is a contiguous block of the global batch; the block a replica gets is a pure function
 *     of (step, seed, P), and its samples use the noise streams of their global indices
 *     (trajectory.ts `shard`), so a prompt's trajectory does not depend on which replica drew it;
 *   - the gradient unit is one prompt's pairs (one TrainStep with return_gradients per prompt), and
 *     the units are reduced in global prompt order, in float64, weighted by their pair counts: the
 *     pair-count-weighted mean of per-prompt mean gradients is the batch mean of RDPO_SPEC.md
 *     section 5 ("the batch loss is the mean"), whatever arrived first and from where.
 */
import { InvalidArgumentError } from "../../lib/errors.ts";

/** One replica's part of a step: global batch items [offset, offset + size). */
export interface Shard {
  replica: number;
  offset: number;
  size: number;
}

/**
 * Splits a global batch of `batch` items into P contiguous blocks (the first `batch % P` one item
 * larger) and gives replica r block (r + step + seed) mod P: the larger blocks rotate over the
 * replicas from step to step, so no replica is always the slowest. Shards come in replica order;
 * a replica's shard is empty when batch < P.
 */
export function shardBatch(batch: number, replicas: number, step: number, seed: number | bigint): Shard[] {
  if (!Number.isInteger(batch) || batch < 0) {
    throw new InvalidArgumentError("batch", `expected an integer >= 0, got ${batch}`);
  }
  if (!Number.isInteger(replicas) || replicas < 1) {
    throw new InvalidArgumentError("replicas", `expected an integer >= 1, got ${replicas}`);
  }
  if (!Number.isInteger(step) || step < 0) {
    throw new InvalidArgumentError("step", `expected an integer >= 0, got ${step}`);
  }
  const base = Math.floor(batch / replicas);
  const extra = batch % replicas;
  const blocks: { offset: number; size: number }[] = [];
  let offset = 0;
  for (let j = 0; j < replicas; j++) {
    const size = base + (j < extra ? 1 : 0);
    blocks.push({ offset, size });
    offset += size;
  }
  const rotation = Number((BigInt(step) + BigInt(seed)) % BigInt(replicas));
  const r0 = rotation < 0 ? rotation + replicas : rotation;
  return blocks.map((_, r) => ({ replica: r, ...blocks[(r + r0) % replicas] }));
}

/** One gradient unit: the mean gradient of `pairs` pairs, by adapter key, at global position `index`. */
export interface GradientUnit {
  /** Global order key (the prompt's index in the global batch). */
  index: number;
  pairs: number;
  gradients: ReadonlyMap<string, Float32Array>;
  /** Metrics of the unit's TrainStep (means over its pairs). */
  loss: number;
  meanLogRatioWinner: number;
  meanLogRatioLoser: number;
  accuracy: number;
}

export interface ReducedGradients {
  /** Weighted mean gradient by key, keys in sorted order. */
  gradients: Map<string, Float32Array>;
  pairs: number;
  loss: number;
  meanLogRatioWinner: number;
  meanLogRatioLoser: number;
  accuracy: number;
}

/**
 * sum_u pairs_u * g_u / sum_u pairs_u over the units sorted by `index`, accumulated in float64 and
 * rounded to float32 once: the order is fixed, so the result is bit-identical however the units
 * were split over replicas or in which order they arrived. Units without pairs are skipped; every
 * other unit must carry the same keys with the same sizes. Null when no unit has pairs.
 */
export function reduceGradients(units: readonly GradientUnit[]): ReducedGradients | null {
  const ordered = units.filter((u) => u.pairs > 0).sort((a, b) => a.index - b.index);
  for (let i = 1; i < ordered.length; i++) {
    if (ordered[i].index === ordered[i - 1].index) {
      throw new InvalidArgumentError("units", `gradient unit ${ordered[i].index} appears twice`);
    }
  }
  if (ordered.length === 0) return null;
  for (const u of ordered) {
    if (!Number.isInteger(u.pairs) || u.pairs < 0) {
      throw new InvalidArgumentError(`units[${u.index}].pairs`, `expected an integer >= 0, got ${u.pairs}`);
    }
  }
  const keys = [...ordered[0].gradients.keys()].sort();
  const acc = new Map<string, Float64Array>();
  for (const k of keys) acc.set(k, new Float64Array(ordered[0].gradients.get(k)!.length));
  let total = 0;
  const m = { loss: 0, hW: 0, hL: 0, acc: 0 };
  for (const u of ordered) {
    if (u.gradients.size !== keys.length) {
      throw new InvalidArgumentError(
        `units[${u.index}].gradients`,
        `has ${u.gradients.size} keys, unit ${ordered[0].index} has ${keys.length}`,
      );
    }
    for (const k of keys) {
      const g = u.gradients.get(k);
      const a = acc.get(k)!;
      if (!g || g.length !== a.length) {
        throw new InvalidArgumentError(
          `units[${u.index}].gradients.${k}`,
          g ? `has ${g.length} values, expected ${a.length}` : "missing",
        );
      }
      for (let i = 0; i < a.length; i++) a[i] += u.pairs * g[i];
    }
    total += u.pairs;
    m.loss += u.pairs * u.loss;
    m.hW += u.pairs * u.meanLogRatioWinner;
    m.hL += u.pairs * u.meanLogRatioLoser;
    m.acc += u.pairs * u.accuracy;
  }
  const gradients = new Map<string, Float32Array>();
  for (const k of keys) {
    const a = acc.get(k)!;
    const out = new Float32Array(a.length);
    for (let i = 0; i < a.length; i++) out[i] = a[i] / total;
    gradients.set(k, out);
  }
  return {
    gradients,
    pairs: total,
    loss: m.loss / total,
    meanLogRatioWinner: m.hW / total,
    meanLogRatioLoser: m.hL / total,
    accuracy: m.acc / total,
  };
}

/**
 * The replica whose checksum differs from the others' (majority; on a tie, every replica that
 * differs from replica 0), or an empty list when all agree.
 */
export function divergentReplicas(checksums: readonly string[]): number[] {
  const counts = new Map<string, number>();
  for (const c of checksums) counts.set(c, (counts.get(c) ?? 0) + 1);
  if (counts.size <= 1) return [];
  const best = Math.max(...counts.values());
  const winners = [...counts].filter(([, n]) => n === best).map(([c]) => c);
  const agreed = winners.length === 1 ? winners[0] : checksums[0];
  return checksums.flatMap((c, i) => (c === agreed ? [] : [i]));
}
