import type { Event } from '@tapio/events';
import { above, addPoint, atLeast, atMost, emptySums, pearsonOf, slopeOf } from './numeric';
import type { LeastSquaresSums } from './numeric';
import { podIdentity } from './scope';
import type { Category, ConfidenceSpec, Decision, RuleDefinition, RuleInput, Scope, Severity } from './types';

// The twelve rules of RULES.md, each declared once. Every summary is what `decide` needs and nothing
// more, so that V2 can keep it up to date per event without scanning.

interface RuleSpec<S extends object> {
  id: string;
  code: string;
  category: Category;
  scope: Scope;
  inputs: readonly RuleInput[];
  windowMs: number;
  lookbackMs?: number;
  thresholds: Readonly<Record<string, number>>;
  confidence: ConfidenceSpec;
  cooldownMs: number;
  summarize(this: void, events: readonly Event[], now: number, trigger: Event): S;
  decide(this: void, summary: S, now: number): Decision | null;
}

function defineRule<S extends object>(spec: RuleSpec<S>): RuleDefinition<S> {
  const lookbackMs = spec.lookbackMs ?? 0;
  return Object.freeze({
    id: spec.id,
    code: spec.code,
    category: spec.category,
    scope: spec.scope,
    inputs: Object.freeze(spec.inputs.map((i) => Object.freeze({ ...i }))),
    windowMs: spec.windowMs,
    lookbackMs,
    horizonMs: Math.max(spec.windowMs, lookbackMs),
    thresholds: Object.freeze({ ...spec.thresholds }),
    confidence: Object.freeze({ ...spec.confidence }),
    cooldownMs: spec.cooldownMs,
    summarize: spec.summarize,
    decide: spec.decide,
  });
}

function input(type: string, kinds: readonly string[] | null = null): RuleInput {
  return { type, kinds, serviceKey: null };
}

function serviceInput(type: string, serviceKey: RuleInput['serviceKey']): RuleInput {
  return { type, kinds: null, serviceKey };
}

/**
 * A measurement of an event: the attribute when it is a finite number, otherwise null. An event
 * without the measurement is not a sample of it (it still counts as an input event of the rule).
 */
function measure(event: Event, attribute: string): number | null {
  const v = event.attributes[attribute];
  return v !== undefined && Number.isFinite(v) ? v : null;
}

/** True when t lies in the closed window [now - spanMs, now]. */
function within(t: number, now: number, spanMs: number): boolean {
  return t <= now && t >= now - spanMs;
}

const SECOND = 1000;

// ---------------------------------------------------------------------------------------------
// Shared summary shapes

/** R1, R12: the earliest anchor event in W, and the follower events in [anchor, now]. */
export interface AnchoredSummary {
  /** Timestamp of the earliest anchor event in W; null when none. */
  anchorAt: number | null;
  /** Follower events with timestamp in [anchorAt, now]. */
  followers: number;
  /** Distinct pods among those followers (pods unknown to the event are not counted). */
  distinctFollowerPods: number;
}

function summarizeAnchored(
  events: readonly Event[],
  now: number,
  windowMs: number,
  anchorType: string,
  followerType: string,
): AnchoredSummary {
  let anchorAt: number | null = null;
  for (const e of events) {
    if (e.type === anchorType && within(e.timestamp, now, windowMs) && (anchorAt === null || e.timestamp < anchorAt)) {
      anchorAt = e.timestamp;
    }
  }
  let followers = 0;
  const pods = new Set<string>();
  if (anchorAt !== null) {
    for (const e of events) {
      if (e.type !== followerType || e.timestamp < anchorAt || e.timestamp > now) continue;
      followers += 1;
      const pod = podIdentity(e);
      if (pod !== null) pods.add(pod);
    }
  }
  return { anchorAt, followers, distinctFollowerPods: pods.size };
}

/** R2, R3: least-squares sums of memory usage over time, and the latest sample. */
export interface MemoryTrendSummary {
  /** Over the memory.usage samples in W (those with a usage_bytes); `lsq.n` is the sample count. */
  lsq: LeastSquaresSums;
  /** usage_bytes and limit_bytes of the latest sample (limit null when that sample has none). */
  latestUsage: number | null;
  latestLimit: number | null;
}

function summarizeMemoryTrend(events: readonly Event[], now: number, windowMs: number): MemoryTrendSummary {
  const lsq = emptySums(now - windowMs, 0);
  let latestUsage: number | null = null;
  let latestLimit: number | null = null;
  let first = true;
  // Events come sorted by timestamp, equal timestamps in arrival order: the last sample is the latest.
  for (const e of events) {
    if (e.type !== 'memory.usage' || !within(e.timestamp, now, windowMs)) continue;
    const usage = measure(e, 'usage_bytes');
    if (usage === null) continue;
    if (first) {
      lsq.originY = usage;
      first = false;
    }
    addPoint(lsq, e.timestamp, usage);
    latestUsage = usage;
    latestLimit = measure(e, 'limit_bytes');
  }
  return { lsq, latestUsage, latestLimit };
}

/** usage/limit of the latest sample, or null when it cannot be computed (no sample, limit <= 0). */
function latestRatio(s: MemoryTrendSummary): number | null {
  if (s.latestUsage === null || s.latestLimit === null || !(s.latestLimit > 0)) return null;
  return s.latestUsage / s.latestLimit;
}

/** R7, R11: a count of events, and the largest gap between consecutive ones. */
export interface CountSummary {
  count: number;
  /** Largest gap between consecutive counted events in time order, ms (0 with fewer than 2). */
  maxGapMs: number;
}

function summarizeCount(events: readonly Event[], now: number, windowMs: number, type: string): CountSummary {
  let count = 0;
  let maxGapMs = 0;
  let previous: number | null = null;
  for (const e of events) {
    if (e.type !== type || !within(e.timestamp, now, windowMs)) continue;
    count += 1;
    if (previous !== null) maxGapMs = Math.max(maxGapMs, e.timestamp - previous);
    previous = e.timestamp;
  }
  return { count, maxGapMs };
}

// ---------------------------------------------------------------------------------------------
// R1 memory-pressure-cascade

const R1_T = { windowMs: 120 * SECOND, minRestarts: 2, highDistinctPods: 2 } as const;

export const memoryPressureCascade = defineRule<AnchoredSummary>({
  id: 'memory-pressure-cascade',
  code: 'R1',
  category: 'resource',
  scope: 'node',
  inputs: [input('memory.oom_kill'), input('pod.restart')],
  windowMs: R1_T.windowMs,
  thresholds: R1_T,
  confidence: { base: 0.7, step: 0.05, min: R1_T.minRestarts },
  cooldownMs: 300 * SECOND,
  summarize: (events, now) => summarizeAnchored(events, now, R1_T.windowMs, 'memory.oom_kill', 'pod.restart'),
  decide(s) {
    if (s.anchorAt === null || s.followers < R1_T.minRestarts) return null;
    return { n: s.followers, severity: s.distinctFollowerPods >= R1_T.highDistinctPods ? 'high' : 'medium' };
  },
});

// ---------------------------------------------------------------------------------------------
// R2 memory-leak

const R2_T = {
  windowMs: 1800 * SECOND,
  minSamples: 10,
  minPearsonR: 0.8,
  minRatio: 0.8,
  highRatio: 0.9,
  criticalRatio: 0.95,
} as const;

export const memoryLeak = defineRule<MemoryTrendSummary>({
  id: 'memory-leak',
  code: 'R2',
  category: 'resource',
  scope: 'container',
  inputs: [input('memory.usage')],
  windowMs: R2_T.windowMs,
  thresholds: R2_T,
  confidence: { base: 0.6, step: 0.02, min: R2_T.minSamples },
  cooldownMs: 900 * SECOND,
  summarize: (events, now) => summarizeMemoryTrend(events, now, R2_T.windowMs),
  decide(s) {
    const n = s.lsq.n;
    if (n < R2_T.minSamples) return null;
    if (!above(slopeOf(s.lsq), 0) || !atLeast(pearsonOf(s.lsq), R2_T.minPearsonR)) return null;
    const ratio = latestRatio(s);
    if (ratio === null || !atLeast(ratio, R2_T.minRatio)) return null;
    const severity: Severity = atLeast(ratio, R2_T.criticalRatio)
      ? 'critical'
      : atLeast(ratio, R2_T.highRatio)
        ? 'high'
        : 'medium';
    return { n, severity };
  },
});

// ---------------------------------------------------------------------------------------------
// R3 oom-prediction

const R3_T = { windowMs: 300 * SECOND, minSamples: 3, minRatio: 0.7, maxSecondsToLimit: 1800 } as const;

export const oomPrediction = defineRule<MemoryTrendSummary>({
  id: 'oom-prediction',
  code: 'R3',
  category: 'resource',
  scope: 'container',
  inputs: [input('memory.usage')],
  windowMs: R3_T.windowMs,
  thresholds: R3_T,
  confidence: { base: 0.8, step: 0.02, min: R3_T.minSamples },
  cooldownMs: 600 * SECOND,
  summarize: (events, now) => summarizeMemoryTrend(events, now, R3_T.windowMs),
  decide(s) {
    const n = s.lsq.n;
    if (n < R3_T.minSamples) return null;
    const perSecond = slopeOf(s.lsq);
    if (!above(perSecond, 0)) return null;
    const ratio = latestRatio(s);
    if (ratio === null || !atLeast(ratio, R3_T.minRatio)) return null;
    // latestRatio non-null guarantees both values are set.
    const secondsToLimit = ((s.latestLimit ?? 0) - (s.latestUsage ?? 0)) / perSecond;
    if (!atMost(secondsToLimit, R3_T.maxSecondsToLimit)) return null;
    return { n, severity: 'critical' };
  },
});

// ---------------------------------------------------------------------------------------------
// R4 cpu-throttle-impact

export interface ThrottleImpactSummary {
  /** cpu.throttle events in W with a throttle_ratio. */
  throttleCount: number;
  throttleSum: number;
  /** Timestamp of the latest syscall.timeout at or before now (within the horizon); null when none. */
  latestTimeoutAt: number | null;
}

const R4_T = {
  windowMs: 300 * SECOND,
  lookbackMs: 120 * SECOND,
  minThrottles: 2,
  minMeanRatio: 0.25,
  highMeanAbove: 0.5,
  criticalMeanAbove: 0.7,
} as const;

export const cpuThrottleImpact = defineRule<ThrottleImpactSummary>({
  id: 'cpu-throttle-impact',
  code: 'R4',
  category: 'performance',
  scope: 'pod',
  inputs: [input('cpu.throttle'), input('syscall.timeout')],
  windowMs: R4_T.windowMs,
  lookbackMs: R4_T.lookbackMs,
  thresholds: R4_T,
  confidence: { base: 0.6, step: 0.05, min: R4_T.minThrottles },
  cooldownMs: 300 * SECOND,
  summarize(events, now) {
    let throttleCount = 0;
    let throttleSum = 0;
    let latestTimeoutAt: number | null = null;
    const horizon = Math.max(R4_T.windowMs, R4_T.lookbackMs);
    for (const e of events) {
      if (e.type === 'cpu.throttle' && within(e.timestamp, now, R4_T.windowMs)) {
        const ratio = measure(e, 'throttle_ratio');
        if (ratio === null) continue;
        throttleCount += 1;
        throttleSum += ratio;
      } else if (e.type === 'syscall.timeout' && within(e.timestamp, now, horizon)) {
        if (latestTimeoutAt === null || e.timestamp > latestTimeoutAt) latestTimeoutAt = e.timestamp;
      }
    }
    return { throttleCount, throttleSum, latestTimeoutAt };
  },
  decide(s, now) {
    if (s.throttleCount < R4_T.minThrottles) return null;
    if (s.latestTimeoutAt === null || s.latestTimeoutAt < now - R4_T.lookbackMs || s.latestTimeoutAt > now) return null;
    const mean = s.throttleSum / s.throttleCount;
    if (!atLeast(mean, R4_T.minMeanRatio)) return null;
    const severity: Severity = above(mean, R4_T.criticalMeanAbove)
      ? 'critical'
      : above(mean, R4_T.highMeanAbove)
        ? 'high'
        : 'medium';
    return { n: s.throttleCount, severity };
  },
});

// ---------------------------------------------------------------------------------------------
// R5 cpu-contention

export interface CpuContentionSummary {
  /** Distinct pods with a cpu.throttle event of throttle_ratio >= 0.1 in W. */
  throttledPods: number;
  /** usage_ratio of the latest node-kind cpu.usage in W that has one; null when none. */
  latestNodeUsage: number | null;
}

const R5_T = {
  windowMs: 300 * SECOND,
  minThrottleRatio: 0.1,
  minPods: 3,
  minNodeUsage: 0.8,
  criticalPods: 6,
  criticalNodeUsage: 0.98,
} as const;

export const cpuContention = defineRule<CpuContentionSummary>({
  id: 'cpu-contention',
  code: 'R5',
  category: 'resource',
  scope: 'node',
  inputs: [input('cpu.throttle'), input('cpu.usage', ['node'])],
  windowMs: R5_T.windowMs,
  thresholds: R5_T,
  confidence: { base: 0.7, step: 0.05, min: R5_T.minPods },
  cooldownMs: 600 * SECOND,
  summarize(events, now) {
    const pods = new Set<string>();
    let latestNodeUsage: number | null = null;
    for (const e of events) {
      if (!within(e.timestamp, now, R5_T.windowMs)) continue;
      if (e.type === 'cpu.throttle') {
        const ratio = measure(e, 'throttle_ratio');
        const pod = podIdentity(e);
        if (ratio !== null && ratio >= R5_T.minThrottleRatio && pod !== null) pods.add(pod);
      } else if (e.type === 'cpu.usage' && e.entity.kind === 'node') {
        // Sorted input: a later sample (or an equal timestamp that arrived later) overwrites.
        latestNodeUsage = measure(e, 'usage_ratio') ?? latestNodeUsage;
      }
    }
    return { throttledPods: pods.size, latestNodeUsage };
  },
  decide(s) {
    if (s.throttledPods < R5_T.minPods) return null;
    if (s.latestNodeUsage === null || s.latestNodeUsage < R5_T.minNodeUsage) return null;
    const critical = s.throttledPods >= R5_T.criticalPods || s.latestNodeUsage >= R5_T.criticalNodeUsage;
    return { n: s.throttledPods, severity: critical ? 'critical' : 'high' };
  },
});

// ---------------------------------------------------------------------------------------------
// R6 high-cpu-pattern

export interface HighCpuSummary {
  /** Pod-kind cpu.usage samples in W with a usage_ratio. */
  samples: number;
  sum: number;
  /** Samples with usage_ratio > 0.9. */
  spikes: number;
}

const R6_T = {
  windowMs: 900 * SECOND,
  minSamples: 10,
  minMean: 0.8,
  spikeAbove: 0.9,
  minSpikePercent: 30,
  criticalMean: 0.95,
} as const;

export const highCpuPattern = defineRule<HighCpuSummary>({
  id: 'high-cpu-pattern',
  code: 'R6',
  category: 'performance',
  scope: 'pod',
  inputs: [input('cpu.usage', ['pod'])],
  windowMs: R6_T.windowMs,
  thresholds: R6_T,
  confidence: { base: 0.6, step: 0.02, min: R6_T.minSamples },
  cooldownMs: 900 * SECOND,
  summarize(events, now) {
    let samples = 0;
    let sum = 0;
    let spikes = 0;
    for (const e of events) {
      if (e.type !== 'cpu.usage' || e.entity.kind !== 'pod' || !within(e.timestamp, now, R6_T.windowMs)) continue;
      const ratio = measure(e, 'usage_ratio');
      if (ratio === null) continue;
      samples += 1;
      sum += ratio;
      if (ratio > R6_T.spikeAbove) spikes += 1;
    }
    return { samples, sum, spikes };
  },
  decide(s) {
    if (s.samples < R6_T.minSamples) return null;
    const mean = s.sum / s.samples;
    // "at least 30 % of the samples": compared in integers, 0.3 * n is inexact in doubles.
    if (!atLeast(mean, R6_T.minMean) || s.spikes * 100 < s.samples * R6_T.minSpikePercent) return null;
    return { n: s.samples, severity: atLeast(mean, R6_T.criticalMean) ? 'critical' : 'high' };
  },
});

// ---------------------------------------------------------------------------------------------
// R7 crash-loop

const R7_T = { windowMs: 900 * SECOND, minRestarts: 3, criticalRestarts: 5, criticalMaxGapMs: 30 * SECOND } as const;

export const crashLoop = defineRule<CountSummary>({
  id: 'crash-loop',
  code: 'R7',
  category: 'reliability',
  scope: 'pod',
  inputs: [input('pod.restart')],
  windowMs: R7_T.windowMs,
  thresholds: R7_T,
  confidence: { base: 0.7, step: 0.05, min: R7_T.minRestarts },
  cooldownMs: 120 * SECOND,
  summarize: (events, now) => summarizeCount(events, now, R7_T.windowMs, 'pod.restart'),
  decide(s) {
    if (s.count < R7_T.minRestarts) return null;
    const critical = s.count >= R7_T.criticalRestarts || s.maxGapMs <= R7_T.criticalMaxGapMs;
    return { n: s.count, severity: critical ? 'critical' : 'high' };
  },
});

// ---------------------------------------------------------------------------------------------
// R8 dns-failure-storm

export interface FailureSpreadSummary {
  failures: number;
  /** Distinct source pods among the failures (failures with no known pod are not counted here). */
  distinctPods: number;
  /** R9 only: timestamp of the latest pod.restart / pod.not_ready at or before now; null when none. */
  latestPodTroubleAt: number | null;
}

function summarizeFailures(
  events: readonly Event[],
  now: number,
  windowMs: number,
  failureType: string,
  lookbackMs: number,
): FailureSpreadSummary {
  let failures = 0;
  const pods = new Set<string>();
  let latestPodTroubleAt: number | null = null;
  for (const e of events) {
    if (e.type === failureType) {
      if (!within(e.timestamp, now, windowMs)) continue;
      failures += 1;
      const pod = podIdentity(e);
      if (pod !== null) pods.add(pod);
    } else if (within(e.timestamp, now, Math.max(windowMs, lookbackMs))) {
      if (latestPodTroubleAt === null || e.timestamp > latestPodTroubleAt) latestPodTroubleAt = e.timestamp;
    }
  }
  return { failures, distinctPods: pods.size, latestPodTroubleAt };
}

const R8_T = { windowMs: 60 * SECOND, minFailures: 5, minPods: 2, criticalPods: 5 } as const;

export const dnsFailureStorm = defineRule<FailureSpreadSummary>({
  id: 'dns-failure-storm',
  code: 'R8',
  category: 'network',
  scope: 'namespace',
  inputs: [input('network.dns_failure')],
  windowMs: R8_T.windowMs,
  thresholds: R8_T,
  confidence: { base: 0.6, step: 0.04, min: R8_T.minFailures },
  cooldownMs: 300 * SECOND,
  summarize: (events, now) => summarizeFailures(events, now, R8_T.windowMs, 'network.dns_failure', 0),
  decide(s) {
    if (s.failures < R8_T.minFailures || s.distinctPods < R8_T.minPods) return null;
    return { n: s.failures, severity: s.distinctPods >= R8_T.criticalPods ? 'critical' : 'high' };
  },
});

// ---------------------------------------------------------------------------------------------
// R9 connection-failure-cascade

const R9_T = { windowMs: 60 * SECOND, lookbackMs: 120 * SECOND, minFailures: 10, minPods: 2 } as const;

export const connectionFailureCascade = defineRule<FailureSpreadSummary>({
  id: 'connection-failure-cascade',
  code: 'R9',
  category: 'network',
  scope: 'service',
  inputs: [
    serviceInput('network.connection_failure', 'destination-label'),
    serviceInput('pod.restart', 'entity'),
    serviceInput('pod.not_ready', 'entity'),
  ],
  windowMs: R9_T.windowMs,
  lookbackMs: R9_T.lookbackMs,
  thresholds: R9_T,
  confidence: { base: 0.6, step: 0.02, min: R9_T.minFailures },
  cooldownMs: 300 * SECOND,
  summarize: (events, now) =>
    summarizeFailures(events, now, R9_T.windowMs, 'network.connection_failure', R9_T.lookbackMs),
  decide(s, now) {
    if (s.failures < R9_T.minFailures || s.distinctPods < R9_T.minPods) return null;
    const trouble =
      s.latestPodTroubleAt !== null && s.latestPodTroubleAt >= now - R9_T.lookbackMs && s.latestPodTroubleAt <= now;
    return { n: s.failures, severity: trouble ? 'critical' : 'high' };
  },
});

// ---------------------------------------------------------------------------------------------
// R10 disk-pressure

export interface DiskSummary {
  /** The triggering event's ratios (null when it has none). */
  usageRatio: number | null;
  inodeRatio: number | null;
}

const R10_T = { minUsage: 0.85, minInodes: 0.9, criticalRatio: 0.95 } as const;

export const diskPressure = defineRule<DiskSummary>({
  id: 'disk-pressure',
  code: 'R10',
  category: 'storage',
  scope: 'node',
  inputs: [input('disk.usage')],
  windowMs: 0,
  thresholds: R10_T,
  confidence: { base: 0.9, step: 0, min: 1 },
  cooldownMs: 600 * SECOND,
  summarize: (_events, _now, trigger) => ({
    usageRatio: measure(trigger, 'usage_ratio'),
    inodeRatio: measure(trigger, 'inode_ratio'),
  }),
  decide(s) {
    const usage = s.usageRatio ?? -Infinity;
    const inodes = s.inodeRatio ?? -Infinity;
    if (usage < R10_T.minUsage && inodes < R10_T.minInodes) return null;
    const critical = usage >= R10_T.criticalRatio || inodes >= R10_T.criticalRatio;
    return { n: 1, severity: critical ? 'critical' : 'high' };
  },
});

// ---------------------------------------------------------------------------------------------
// R11 volume-mount-failure

const R11_T = { windowMs: 600 * SECOND, minFailures: 2 } as const;

export const volumeMountFailure = defineRule<CountSummary>({
  id: 'volume-mount-failure',
  code: 'R11',
  category: 'storage',
  scope: 'pod',
  inputs: [input('volume.mount_failed')],
  windowMs: R11_T.windowMs,
  thresholds: R11_T,
  confidence: { base: 0.7, step: 0.1, min: R11_T.minFailures },
  cooldownMs: 600 * SECOND,
  summarize: (events, now) => summarizeCount(events, now, R11_T.windowMs, 'volume.mount_failed'),
  decide(s) {
    return s.count < R11_T.minFailures ? null : { n: s.count, severity: 'high' };
  },
});

// ---------------------------------------------------------------------------------------------
// R12 node-pressure-eviction

const R12_T = { windowMs: 300 * SECOND, minEvictions: 2, criticalEvictions: 5 } as const;

export const nodePressureEviction = defineRule<AnchoredSummary>({
  id: 'node-pressure-eviction',
  code: 'R12',
  category: 'reliability',
  scope: 'node',
  inputs: [input('node.pressure'), input('pod.evicted')],
  windowMs: R12_T.windowMs,
  thresholds: R12_T,
  confidence: { base: 0.7, step: 0.05, min: R12_T.minEvictions },
  cooldownMs: 300 * SECOND,
  summarize: (events, now) => summarizeAnchored(events, now, R12_T.windowMs, 'node.pressure', 'pod.evicted'),
  decide(s) {
    if (s.anchorAt === null || s.followers < R12_T.minEvictions) return null;
    return { n: s.followers, severity: s.followers >= R12_T.criticalEvictions ? 'critical' : 'high' };
  },
});

/** The catalogue, in order R1..R12. */
export const RULES: readonly RuleDefinition[] = Object.freeze([
  memoryPressureCascade,
  memoryLeak,
  oomPrediction,
  cpuThrottleImpact,
  cpuContention,
  highCpuPattern,
  crashLoop,
  dnsFailureStorm,
  connectionFailureCascade,
  diskPressure,
  volumeMountFailure,
  nodePressureEviction,
]);

export const RULES_BY_ID: ReadonlyMap<string, RuleDefinition> = new Map(RULES.map((r) => [r.id, r]));
