// Every rule of RULES.md, run through the V1 engine: fires on a minimal incident (scope key, severity
// tiers, confidence, evidence, result id), stays quiet one step short, honours cooldown, lateness and
// scope isolation.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { Event, Result } from '@tapio/events';
import { V1Engine } from '@tapio/engine-v1';
import { RULES_BY_ID, scopeKeyOf } from '@tapio/rules';
import type { RuleDefinition } from '@tapio/rules';
import { EventsBuilder, T0 } from '../../helpers/events-builder';

type Gen = (b: EventsBuilder) => Event[];

interface Tier {
  name: string;
  events: Gen;
  severity: string;
  confidence: number;
  /** Indexes of the expected evidence, in expected order; default: every event, in order. */
  evidence?: number[];
}

interface RuleCase {
  id: string;
  key: string;
  /** Minimal incident whose events start at `start` seconds; it fires exactly at its last event. */
  incident(b: EventsBuilder, start: number): Event[];
  severity: string;
  confidence: number;
  tiers: Tier[];
  misses: Array<{ name: string; events: Gen }>;
  /** One input event that fires nothing on its own, at `seconds`, to raise the watermark. */
  harmless(b: EventsBuilder, seconds: number): Event;
  /** The event moved to another scope key of the same rule; null for single-event incidents. */
  otherKey: ((e: Event) => Event) | null;
  /** A stream that would fire repeatedly without cooldown; default: the incident three times. */
  cooldownStream?: Gen;
}

const GiB = 1_000_000_000;

function withEntity(e: Event, patch: Partial<Event['entity']>): Event {
  return { ...e, entity: { ...e.entity, ...patch } };
}
const moveNode = (e: Event): Event =>
  e.entity.kind === 'node' ? withEntity(e, { name: 'node-2' }) : withEntity(e, { node: 'node-2' });
const movePod = (e: Event): Event =>
  e.entity.kind === 'pod' ? withEntity(e, { name: 'web-2' }) : withEntity(e, { pod: 'web-2' });

function memSamples(b: EventsBuilder, start: number, ratios: number[], spacing = 60, o = {}): Event[] {
  return ratios.map((r, i) =>
    b.container('memory.usage', start + i * spacing, {
      attributes: { usage_bytes: Math.round(r * GiB), limit_bytes: GiB },
      ...o,
    }),
  );
}
const ramp = (from: number, count: number, step = 0.01): number[] =>
  Array.from({ length: count }, (_, i) => Number((from + step * i).toFixed(4)));
const zigzag = (z: number): number[] =>
  Array.from({ length: 10 }, (_, i) => Number((0.72 + 0.01 * i + (i % 2 === 1 ? z : -z)).toFixed(4)));

function throttle(b: EventsBuilder, t: number, ratio: number, o = {}): Event {
  return b.pod('cpu.throttle', t, { attributes: { throttle_ratio: ratio }, ...o });
}
function cpuSamples(b: EventsBuilder, start: number, ratios: number[], spacing = 60): Event[] {
  return ratios.map((r, i) => b.pod('cpu.usage', start + i * spacing, { attributes: { usage_ratio: r } }));
}
const rep = (v: number, n: number): number[] => Array.from({ length: n }, () => v);

function connFail(b: EventsBuilder, t: number, pod: string, destination = 'shop/cart'): Event {
  return b.pod('network.connection_failure', t, {
    name: pod,
    namespace: 'front',
    labels: { destination, error: 'refused' },
  });
}
function connFails(b: EventsBuilder, start: number, count: number, spacing = 1): Event[] {
  return Array.from({ length: count }, (_, i) => connFail(b, start + i * spacing, i % 2 === 0 ? 'p1' : 'p2'));
}
function dns(b: EventsBuilder, t: number, pod: string, o = {}): Event {
  return b.pod('network.dns_failure', t, { name: pod, labels: { query: 'db.shop', rcode: 'SERVFAIL' }, ...o });
}
function disk(b: EventsBuilder, t: number, usage: number, inodes: number): Event {
  return b.node('disk.usage', t, { attributes: { usage_ratio: usage, inode_ratio: inodes } });
}

const CASES: RuleCase[] = [
  {
    id: 'memory-pressure-cascade',
    key: 'node/node-1',
    incident: (b, s) => [b.container('memory.oom_kill', s), b.pod('pod.restart', s + 10), b.pod('pod.restart', s + 20)],
    severity: 'medium',
    confidence: 0.7,
    tiers: [
      {
        name: 'restarts of two distinct pods',
        events: (b) => [
          b.container('memory.oom_kill', 0),
          b.pod('pod.restart', 10),
          b.pod('pod.restart', 20, { name: 'web-2' }),
        ],
        severity: 'high',
        confidence: 0.7,
      },
      {
        // Restarts before any oom kill fire nothing; the oom kill then arrives out of order (within
        // lateness) and the next restart sees k = 0 and four restarts.
        name: 'four restarts, oom kill arriving late (confidence step)',
        events: (b) => [
          ...[5, 10, 15].map((t) => b.pod('pod.restart', t)),
          b.pod('memory.oom_kill', 0),
          b.pod('pod.restart', 20),
        ],
        severity: 'medium',
        confidence: 0.8,
        evidence: [3, 0, 1, 2, 4],
      },
      {
        name: 'oom kill exactly W before now (closed window)',
        events: (b) => [b.container('memory.oom_kill', 0), b.pod('pod.restart', 60), b.pod('pod.restart', 120)],
        severity: 'medium',
        confidence: 0.7,
      },
    ],
    misses: [
      { name: 'one restart', events: (b) => [b.container('memory.oom_kill', 0), b.pod('pod.restart', 10)] },
      {
        name: 'restarts before the oom kill',
        events: (b) => [b.pod('pod.restart', 0), b.pod('pod.restart', 10), b.container('memory.oom_kill', 20)],
      },
      {
        name: 'oom kill just outside the window',
        events: (b) => [b.container('memory.oom_kill', 0), b.pod('pod.restart', 60), b.pod('pod.restart', 120.001)],
      },
      {
        name: 'restart without a node',
        events: (b) => [
          b.container('memory.oom_kill', 0),
          b.pod('pod.restart', 10),
          b.pod('pod.restart', 20, { node: null }),
        ],
      },
    ],
    harmless: (b, t) => b.pod('pod.restart', t),
    otherKey: moveNode,
  },
  {
    id: 'memory-leak',
    key: 'container/shop/web-1/app',
    incident: (b, s) => memSamples(b, s, ramp(0.71, 10)),
    severity: 'medium',
    confidence: 0.6,
    tiers: [
      { name: 'latest ratio 0.9', events: (b) => memSamples(b, 0, ramp(0.81, 10)), severity: 'high', confidence: 0.6 },
      {
        name: 'latest ratio 0.95',
        events: (b) => memSamples(b, 0, ramp(0.86, 10)),
        severity: 'critical',
        confidence: 0.6,
      },
      { name: 'twelve samples', events: (b) => memSamples(b, 0, ramp(0.69, 12)), severity: 'medium', confidence: 0.64 },
      // r = 0.8022 (computed independently): noisy but correlated enough.
      {
        name: 'noisy growth, r just over 0.8',
        events: (b) => memSamples(b, 0, zigzag(0.025)),
        severity: 'medium',
        confidence: 0.6,
      },
    ],
    misses: [
      { name: 'nine samples', events: (b) => memSamples(b, 0, ramp(0.72, 9)) },
      { name: 'latest ratio 0.79', events: (b) => memSamples(b, 0, ramp(0.7, 10)) },
      // r = 0.7923 (computed independently), slope > 0, latest ratio 0.836.
      { name: 'r just under 0.8', events: (b) => memSamples(b, 0, zigzag(0.026)) },
      { name: 'shrinking usage', events: (b) => memSamples(b, 0, ramp(0.95, 10, -0.01)) },
      { name: 'samples spread just beyond 1800 s', events: (b) => memSamples(b, 0, ramp(0.71, 10), 200.2) },
      { name: 'container without namespace', events: (b) => memSamples(b, 0, ramp(0.71, 10), 60, { namespace: null }) },
      {
        name: 'samples without limit_bytes',
        events: (b) =>
          ramp(0.71, 10).map((r, i) => b.container('memory.usage', i * 60, { attributes: { usage_bytes: r * GiB } })),
      },
    ],
    harmless: (b, t) => memSamples(b, t, [0.5])[0]!,
    otherKey: (e) => withEntity(e, { name: 'sidecar' }),
    // One long linear ramp: every sample from the 10th on would fire without cooldown.
    cooldownStream: (b) => memSamples(b, 0, ramp(0.71, 30)),
  },
  {
    id: 'oom-prediction',
    key: 'container/shop/web-1/app',
    incident: (b, s) => memSamples(b, s, [0.6, 0.65, 0.7]),
    severity: 'critical',
    confidence: 0.8,
    tiers: [
      // slope = 0.02 GiB / 120 s; (1 - 0.7) GiB / slope = 1800 s exactly.
      {
        name: 'limit reached in exactly 1800 s',
        events: (b) => memSamples(b, 0, [0.68, 0.69, 0.7]),
        severity: 'critical',
        confidence: 0.8,
      },
      {
        name: 'four samples',
        events: (b) => memSamples(b, 0, [0.55, 0.6, 0.65, 0.7]),
        severity: 'critical',
        confidence: 0.82,
      },
      {
        // At t = 120 s the sample 0.69 arrives first, then 0.72: the latest is the last arrived (0.72),
        // although its id sorts first.
        name: 'latest among equal timestamps is the last arrived',
        events: (b) => [
          ...memSamples(b, 0, [0.6, 0.65]),
          ...memSamples(b, 120, [0.69], 60, { id: 'z-sample' }),
          ...memSamples(b, 120, [0.72], 60, { id: 'a-sample' }),
        ],
        severity: 'critical',
        confidence: 0.82,
        evidence: [0, 1, 3, 2],
      },
    ],
    misses: [
      { name: 'two samples', events: (b) => memSamples(b, 0, [0.65, 0.7]) },
      { name: 'latest ratio 0.69', events: (b) => memSamples(b, 0, [0.59, 0.64, 0.69]) },
      { name: 'limit reached in 1895 s', events: (b) => memSamples(b, 0, [0.681, 0.6905, 0.7]) },
      { name: 'flat usage', events: (b) => memSamples(b, 0, [0.8, 0.8, 0.8]) },
      { name: 'samples spread just beyond 300 s', events: (b) => memSamples(b, 0, [0.6, 0.65, 0.7], 150.0005) },
      { name: 'container without pod', events: (b) => memSamples(b, 0, [0.6, 0.65, 0.7], 60, { pod: null }) },
    ],
    harmless: (b, t) => memSamples(b, t, [0.5])[0]!,
    otherKey: (e) => withEntity(e, { name: 'sidecar' }),
  },
  {
    id: 'cpu-throttle-impact',
    key: 'pod/shop/web-1',
    incident: (b, s) => [throttle(b, s, 0.3), b.pod('syscall.timeout', s + 10), throttle(b, s + 20, 0.3)],
    severity: 'medium',
    confidence: 0.6,
    tiers: [
      {
        name: 'mean 0.6',
        events: (b) => [throttle(b, 0, 0.6), b.pod('syscall.timeout', 10), throttle(b, 20, 0.6)],
        severity: 'high',
        confidence: 0.6,
      },
      {
        name: 'mean exactly 0.5 is not above 0.5',
        events: (b) => [throttle(b, 0, 0.4), b.pod('syscall.timeout', 10), throttle(b, 20, 0.6)],
        severity: 'medium',
        confidence: 0.6,
      },
      {
        name: 'mean 0.8',
        events: (b) => [throttle(b, 0, 0.8), b.pod('syscall.timeout', 10), throttle(b, 20, 0.8)],
        severity: 'critical',
        confidence: 0.6,
      },
      {
        name: 'mean exactly 0.7 is not above 0.7',
        events: (b) => [throttle(b, 0, 0.6), b.pod('syscall.timeout', 10), throttle(b, 20, 0.8)],
        severity: 'high',
        confidence: 0.6,
      },
      {
        name: 'mean exactly 0.25',
        events: (b) => [throttle(b, 0, 0.2), b.pod('syscall.timeout', 10), throttle(b, 20, 0.3)],
        severity: 'medium',
        confidence: 0.6,
      },
      {
        name: 'three throttles',
        events: (b) => [throttle(b, 0, 0.3), throttle(b, 5, 0.3), throttle(b, 10, 0.3), b.pod('syscall.timeout', 20)],
        severity: 'medium',
        confidence: 0.65,
      },
      {
        name: 'timeout exactly 120 s back',
        events: (b) => [b.pod('syscall.timeout', 0), throttle(b, 100, 0.3), throttle(b, 120, 0.3)],
        severity: 'medium',
        confidence: 0.6,
      },
      {
        name: 'container events count for their pod',
        events: (b) => [
          b.container('cpu.throttle', 0, { attributes: { throttle_ratio: 0.3 } }),
          b.container('syscall.timeout', 10),
          b.container('cpu.throttle', 20, { name: 'sidecar', attributes: { throttle_ratio: 0.3 } }),
        ],
        severity: 'medium',
        confidence: 0.6,
      },
    ],
    misses: [
      { name: 'one throttle', events: (b) => [b.pod('syscall.timeout', 0), throttle(b, 10, 0.9)] },
      { name: 'mean 0.24', events: (b) => [throttle(b, 0, 0.24), b.pod('syscall.timeout', 10), throttle(b, 20, 0.24)] },
      { name: 'no syscall timeout', events: (b) => [throttle(b, 0, 0.9), throttle(b, 20, 0.9)] },
      {
        name: 'timeout 121 s back',
        events: (b) => [b.pod('syscall.timeout', 0), throttle(b, 100, 0.3), throttle(b, 121, 0.3)],
      },
      {
        name: 'throttles just beyond 300 s apart',
        events: (b) => [throttle(b, 0, 0.9), b.pod('syscall.timeout', 290), throttle(b, 300.001, 0.9)],
      },
      {
        name: 'pod without namespace',
        events: (b) => [
          throttle(b, 0, 0.3, { namespace: null }),
          b.pod('syscall.timeout', 10, { namespace: null }),
          throttle(b, 20, 0.3, { namespace: null }),
        ],
      },
    ],
    harmless: (b, t) => b.pod('syscall.timeout', t),
    otherKey: movePod,
  },
  {
    id: 'cpu-contention',
    key: 'node/node-1',
    incident: (b, s) => [
      b.node('cpu.usage', s, { attributes: { usage_ratio: 0.85 } }),
      throttle(b, s + 10, 0.2, { name: 'a' }),
      throttle(b, s + 20, 0.2, { name: 'b' }),
      throttle(b, s + 30, 0.2, { name: 'c' }),
    ],
    severity: 'high',
    confidence: 0.7,
    tiers: [
      {
        name: 'six pods',
        events: (b) => [
          ...'abcdef'.split('').map((p, i) => throttle(b, i, 0.5, { name: p })),
          b.node('cpu.usage', 10, { attributes: { usage_ratio: 0.8 } }),
        ],
        severity: 'critical',
        confidence: 0.85,
      },
      {
        name: 'node usage 0.98',
        events: (b) => [
          b.node('cpu.usage', 0, { attributes: { usage_ratio: 0.98 } }),
          ...'abc'.split('').map((p, i) => throttle(b, 10 + i, 0.5, { name: p })),
        ],
        severity: 'critical',
        confidence: 0.7,
      },
      {
        name: 'throttle ratio exactly 0.1 counts; containers count for their pod',
        events: (b) => [
          b.node('cpu.usage', 0, { attributes: { usage_ratio: 0.8 } }),
          b.container('cpu.throttle', 10, { pod: 'a', attributes: { throttle_ratio: 0.1 } }),
          b.container('cpu.throttle', 11, { pod: 'b', attributes: { throttle_ratio: 0.1 } }),
          b.container('cpu.throttle', 12, { pod: 'c', attributes: { throttle_ratio: 0.1 } }),
        ],
        severity: 'high',
        confidence: 0.7,
      },
    ],
    misses: [
      {
        name: 'two pods',
        events: (b) => [
          b.node('cpu.usage', 0, { attributes: { usage_ratio: 0.9 } }),
          throttle(b, 10, 0.5, { name: 'a' }),
          throttle(b, 20, 0.5, { name: 'b' }),
          throttle(b, 30, 0.5, { name: 'a' }),
        ],
      },
      {
        name: 'third pod throttled 0.09',
        events: (b) => [
          b.node('cpu.usage', 0, { attributes: { usage_ratio: 0.9 } }),
          throttle(b, 10, 0.5, { name: 'a' }),
          throttle(b, 20, 0.5, { name: 'b' }),
          throttle(b, 30, 0.09, { name: 'c' }),
        ],
      },
      {
        name: 'node usage 0.79',
        events: (b) => [
          b.node('cpu.usage', 0, { attributes: { usage_ratio: 0.79 } }),
          ...'abc'.split('').map((p, i) => throttle(b, 10 + i, 0.5, { name: p })),
        ],
      },
      {
        name: 'pod-kind cpu.usage is not node usage',
        events: (b) => [
          b.pod('cpu.usage', 0, { attributes: { usage_ratio: 0.99 } }),
          ...'abc'.split('').map((p, i) => throttle(b, 10 + i, 0.5, { name: p })),
        ],
      },
      {
        name: 'the latest node usage is below 0.8',
        events: (b) => [
          b.node('cpu.usage', 0, { attributes: { usage_ratio: 0.99 } }),
          b.node('cpu.usage', 5, { attributes: { usage_ratio: 0.7 } }),
          ...'abc'.split('').map((p, i) => throttle(b, 10 + i, 0.5, { name: p })),
        ],
      },
      {
        name: 'node usage just outside the window',
        events: (b) => [
          b.node('cpu.usage', 0, { attributes: { usage_ratio: 0.9 } }),
          throttle(b, 200, 0.5, { name: 'a' }),
          throttle(b, 250, 0.5, { name: 'b' }),
          throttle(b, 300.001, 0.5, { name: 'c' }),
        ],
      },
      {
        name: 'throttle without a node',
        events: (b) => [
          b.node('cpu.usage', 0, { attributes: { usage_ratio: 0.9 } }),
          throttle(b, 10, 0.5, { name: 'a' }),
          throttle(b, 20, 0.5, { name: 'b' }),
          throttle(b, 30, 0.5, { name: 'c', node: null }),
        ],
      },
    ],
    harmless: (b, t) => b.node('cpu.usage', t, { attributes: { usage_ratio: 0.1 } }),
    otherKey: moveNode,
  },
  {
    id: 'high-cpu-pattern',
    key: 'pod/shop/web-1',
    incident: (b, s) => cpuSamples(b, s, [...rep(0.75, 7), ...rep(0.95, 3)]),
    severity: 'high',
    confidence: 0.6,
    tiers: [
      { name: 'mean 0.96', events: (b) => cpuSamples(b, 0, rep(0.96, 10)), severity: 'critical', confidence: 0.6 },
      {
        name: 'mean exactly 0.95',
        events: (b) => cpuSamples(b, 0, rep(0.95, 10)),
        severity: 'critical',
        confidence: 0.6,
      },
      {
        // 6 x 0.72 + 4 x 0.92 = 8 exactly, but the double sum is 7.999999999999999.
        name: 'mean exactly 0.8 (inexact double sum)',
        events: (b) => cpuSamples(b, 0, [...rep(0.72, 6), ...rep(0.92, 4)]),
        severity: 'high',
        confidence: 0.6,
      },
      {
        name: 'twelve samples',
        events: (b) => cpuSamples(b, 0, [...rep(0.75, 8), ...rep(0.95, 4)]),
        severity: 'high',
        confidence: 0.64,
      },
    ],
    misses: [
      { name: 'nine samples', events: (b) => cpuSamples(b, 0, [...rep(0.75, 6), ...rep(0.95, 3)]) },
      { name: 'mean 0.789', events: (b) => cpuSamples(b, 0, [...rep(0.72, 7), ...rep(0.95, 3)]) },
      { name: '20 % of samples above 0.9', events: (b) => cpuSamples(b, 0, [...rep(0.8, 8), ...rep(0.95, 2)]) },
      {
        name: 'samples at exactly 0.9 are not above 0.9',
        events: (b) => cpuSamples(b, 0, [...rep(0.8, 7), ...rep(0.9, 3)]),
      },
      {
        name: 'samples spread just beyond 900 s',
        events: (b) => cpuSamples(b, 0, [...rep(0.75, 7), ...rep(0.95, 3)], 100.02),
      },
      {
        name: 'node-kind cpu.usage',
        events: (b) => rep(0.96, 10).map((r, i) => b.node('cpu.usage', i * 60, { attributes: { usage_ratio: r } })),
      },
    ],
    harmless: (b, t) => cpuSamples(b, t, [0.1])[0]!,
    otherKey: movePod,
  },
  {
    id: 'crash-loop',
    key: 'pod/shop/web-1',
    incident: (b, s) => [0, 40, 80].map((d) => b.pod('pod.restart', s + d)),
    severity: 'high',
    confidence: 0.7,
    tiers: [
      {
        name: 'gaps of 30 s',
        events: (b) => [0, 30, 60].map((t) => b.pod('pod.restart', t)),
        severity: 'critical',
        confidence: 0.7,
      },
      {
        name: 'a gap of 31 s',
        events: (b) => [0, 30, 61].map((t) => b.pod('pod.restart', t)),
        severity: 'high',
        confidence: 0.7,
      },
      {
        // Arriving newest first (within lateness), each sees only itself: now is its own timestamp.
        name: 'five restarts',
        events: (b) => [300, 200, 100, 0, 400].map((t) => b.pod('pod.restart', t / 10)),
        severity: 'critical',
        confidence: 0.8,
        evidence: [3, 2, 1, 0, 4],
      },
      {
        name: 'restarts exactly 900 s apart',
        events: (b) => [0, 450, 900].map((t) => b.pod('pod.restart', t)),
        severity: 'high',
        confidence: 0.7,
      },
    ],
    misses: [
      { name: 'two restarts', events: (b) => [0, 10].map((t) => b.pod('pod.restart', t)) },
      {
        name: 'restarts just beyond 900 s apart',
        events: (b) => [0, 450, 900.001].map((t) => b.pod('pod.restart', t)),
      },
      {
        name: 'pod without namespace',
        events: (b) => [0, 10, 20].map((t) => b.pod('pod.restart', t, { namespace: null })),
      },
    ],
    harmless: (b, t) => b.pod('pod.restart', t),
    otherKey: movePod,
  },
  {
    id: 'dns-failure-storm',
    key: 'namespace/shop',
    incident: (b, s) => ['a', 'a', 'a', 'a', 'b'].map((p, i) => dns(b, s + i * 10, p)),
    severity: 'high',
    confidence: 0.6,
    tiers: [
      {
        name: 'five pods',
        events: (b) => 'abcde'.split('').map((p, i) => dns(b, i, p)),
        severity: 'critical',
        confidence: 0.6,
      },
      {
        name: 'seven failures',
        events: (b) => 'aaaaaab'.split('').map((p, i) => dns(b, i, p)),
        severity: 'high',
        confidence: 0.68,
      },
      {
        name: 'failures exactly 60 s apart',
        events: (b) => 'aaaab'.split('').map((p, i) => dns(b, i * 15, p)),
        severity: 'high',
        confidence: 0.6,
      },
    ],
    misses: [
      { name: 'four failures', events: (b) => 'aaab'.split('').map((p, i) => dns(b, i, p)) },
      { name: 'one pod', events: (b) => 'aaaaa'.split('').map((p, i) => dns(b, i, p)) },
      {
        name: 'failures just beyond 60 s apart',
        events: (b) => 'aaaab'.split('').map((p, i) => dns(b, i * 15.00025, p)),
      },
      {
        name: 'pods without namespace',
        events: (b) => 'aaaab'.split('').map((p, i) => dns(b, i, p, { namespace: null })),
      },
    ],
    harmless: (b, t) => dns(b, t, 'a'),
    otherKey: (e) => withEntity(e, { namespace: 'ops' }),
  },
  {
    id: 'connection-failure-cascade',
    key: 'service/shop/cart',
    incident: (b, s) => connFails(b, s, 10),
    severity: 'high',
    confidence: 0.6,
    tiers: [
      {
        // RULES.md: a restart 90 s back makes it critical, but it is outside W = 60 s: not evidence.
        name: 'restart of a service pod 90 s back',
        events: (b) => [b.pod('pod.restart', 0, { name: 'cart-1', service: 'cart' }), ...connFails(b, 81, 10)],
        severity: 'critical',
        confidence: 0.6,
        evidence: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
      },
      {
        name: 'restart exactly 120 s back',
        events: (b) => [b.pod('pod.restart', 0, { name: 'cart-1', service: 'cart' }), ...connFails(b, 111, 10)],
        severity: 'critical',
        confidence: 0.6,
        evidence: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
      },
      {
        name: 'restart 121 s back',
        events: (b) => [b.pod('pod.restart', 0, { name: 'cart-1', service: 'cart' }), ...connFails(b, 112, 10)],
        severity: 'high',
        confidence: 0.6,
        evidence: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
      },
      {
        name: 'not-ready within W is evidence',
        events: (b) => [
          ...connFails(b, 0, 5),
          b.pod('pod.not_ready', 4.5, { name: 'cart-1', service: 'cart' }),
          ...connFails(b, 5, 5),
        ],
        severity: 'critical',
        confidence: 0.6,
        evidence: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
      },
      {
        name: 'restart without entity.service is not seen',
        events: (b) => [b.pod('pod.restart', 0, { name: 'cart-1' }), ...connFails(b, 1, 10)],
        severity: 'high',
        confidence: 0.6,
        evidence: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
      },
      {
        name: 'twelve failures',
        events: (b) => [...Array.from({ length: 11 }, (_, i) => connFail(b, i, 'p1')), connFail(b, 11, 'p2')],
        severity: 'high',
        confidence: 0.64,
      },
    ],
    misses: [
      { name: 'nine failures', events: (b) => connFails(b, 0, 9) },
      { name: 'one source pod', events: (b) => Array.from({ length: 10 }, (_, i) => connFail(b, i, 'p1')) },
      { name: 'failures just beyond 60 s apart', events: (b) => connFails(b, 0, 10, 60.001 / 9) },
      {
        name: 'destination without namespace',
        events: (b) => Array.from({ length: 10 }, (_, i) => connFail(b, i, i % 2 ? 'p1' : 'p2', 'cart')),
      },
    ],
    harmless: (b, t) => connFail(b, t, 'p1'),
    otherKey: (e) => ({ ...e, labels: { ...e.labels, destination: 'shop/payments' } }),
  },
  {
    id: 'disk-pressure',
    key: 'node/node-1',
    incident: (b, s) => [disk(b, s, 0.85, 0.1)],
    severity: 'high',
    confidence: 0.9,
    tiers: [
      { name: 'inodes 0.9', events: (b) => [disk(b, 0, 0.1, 0.9)], severity: 'high', confidence: 0.9 },
      { name: 'usage 0.95', events: (b) => [disk(b, 0, 0.95, 0.1)], severity: 'critical', confidence: 0.9 },
      { name: 'inodes 0.95', events: (b) => [disk(b, 0, 0.5, 0.95)], severity: 'critical', confidence: 0.9 },
      {
        // W = 0: the window is the events at t == now; an event 1 ms earlier is not evidence.
        name: 'events at the same timestamp are evidence',
        events: (b) => [disk(b, -0.001, 0.1, 0.1), disk(b, 0, 0.1, 0.1), disk(b, 0, 0.86, 0.1)],
        severity: 'high',
        confidence: 0.9,
        evidence: [1, 2],
      },
    ],
    misses: [
      { name: 'usage 0.84 and inodes 0.89', events: (b) => [disk(b, 0, 0.84, 0.89)] },
      { name: 'no ratios', events: (b) => [b.node('disk.usage', 0)] },
      {
        name: 'pod event without a node',
        events: (b) => [b.pod('disk.usage', 0, { node: null, attributes: { usage_ratio: 0.99 } })],
      },
    ],
    harmless: (b, t) => disk(b, t, 0.1, 0.1),
    otherKey: null,
  },
  {
    id: 'volume-mount-failure',
    key: 'pod/shop/web-1',
    incident: (b, s) => [b.pod('volume.mount_failed', s), b.pod('volume.mount_failed', s + 300)],
    severity: 'high',
    confidence: 0.7,
    tiers: [
      {
        name: 'three failures',
        events: (b) => [20, 10, 30].map((t) => b.pod('volume.mount_failed', t)),
        severity: 'high',
        confidence: 0.8,
        evidence: [1, 0, 2],
      },
      {
        name: 'failures exactly 600 s apart',
        events: (b) => [0, 600].map((t) => b.pod('volume.mount_failed', t)),
        severity: 'high',
        confidence: 0.7,
      },
    ],
    misses: [
      { name: 'one failure', events: (b) => [b.pod('volume.mount_failed', 0)] },
      {
        name: 'failures just beyond 600 s apart',
        events: (b) => [0, 600.001].map((t) => b.pod('volume.mount_failed', t)),
      },
      {
        name: 'pod without namespace',
        events: (b) => [0, 1].map((t) => b.pod('volume.mount_failed', t, { namespace: null })),
      },
    ],
    harmless: (b, t) => b.pod('volume.mount_failed', t),
    otherKey: movePod,
  },
  {
    id: 'node-pressure-eviction',
    key: 'node/node-1',
    incident: (b, s) => [
      b.node('node.pressure', s, { labels: { condition: 'MemoryPressure' } }),
      b.pod('pod.evicted', s + 10),
      b.pod('pod.evicted', s + 20, { name: 'web-2' }),
    ],
    severity: 'high',
    confidence: 0.7,
    tiers: [
      {
        name: 'five evictions',
        events: (b) => [
          ...[1, 2, 3, 4].map((t) => b.pod('pod.evicted', t, { name: `w${t}` })),
          b.node('node.pressure', 0),
          b.pod('pod.evicted', 5, { name: 'w5' }),
        ],
        severity: 'critical',
        confidence: 0.85,
        evidence: [4, 0, 1, 2, 3, 5],
      },
      {
        name: 'eviction at the same instant as the pressure',
        events: (b) => [b.node('node.pressure', 0), b.pod('pod.evicted', 0), b.pod('pod.evicted', 300)],
        severity: 'high',
        confidence: 0.7,
      },
    ],
    misses: [
      { name: 'one eviction', events: (b) => [b.node('node.pressure', 0), b.pod('pod.evicted', 10)] },
      {
        name: 'evictions before the pressure',
        events: (b) => [b.pod('pod.evicted', 0), b.pod('pod.evicted', 10), b.node('node.pressure', 20)],
      },
      {
        name: 'pressure just outside the window',
        events: (b) => [b.node('node.pressure', 0), b.pod('pod.evicted', 200), b.pod('pod.evicted', 300.001)],
      },
      {
        name: 'eviction without a node',
        events: (b) => [b.node('node.pressure', 0), b.pod('pod.evicted', 10), b.pod('pod.evicted', 20, { node: null })],
      },
    ],
    harmless: (b, t) => b.pod('pod.evicted', t),
    otherKey: moveNode,
  },
];

function expectedResultId(ruleId: string, key: string, triggerId: string): string {
  return createHash('sha256').update(`${ruleId}|${key}|${triggerId}`).digest('hex').slice(0, 32);
}

function run(events: readonly Event[], engine = new V1Engine()): { engine: V1Engine; results: Result[] } {
  const results: Result[] = [];
  for (const e of events) results.push(...engine.process(e));
  return { engine, results };
}

function ofRule(results: readonly Result[], ruleId: string): Result[] {
  return results.filter((r) => r.ruleId === ruleId);
}

function checkFires(
  c: RuleCase,
  rule: RuleDefinition,
  events: Event[],
  severity: string,
  confidence: number,
  evidence?: number[],
): void {
  const { results } = run(events);
  const mine = ofRule(results, c.id);
  const trigger = events[events.length - 1]!;
  assert.equal(mine.length, 1, `expected exactly one ${c.id} result`);
  const r = mine[0]!;
  assert.deepEqual(r, {
    id: expectedResultId(c.id, c.key, trigger.id),
    ruleId: c.id,
    category: rule.category,
    entityKey: c.key,
    triggeredAt: trigger.timestamp,
    triggerEventId: trigger.id,
    severity,
    confidence,
    evidence: (evidence ?? events.map((_, i) => i)).map((i) => events[i]!.id),
    engine: 'v1',
  });
}

test('the catalogue has the twelve rules of RULES.md', () => {
  assert.deepEqual(
    CASES.map((c) => c.id),
    [...RULES_BY_ID.keys()],
  );
  const codes = [...RULES_BY_ID.values()].map((r) => r.code);
  assert.deepEqual(codes, ['R1', 'R2', 'R3', 'R4', 'R5', 'R6', 'R7', 'R8', 'R9', 'R10', 'R11', 'R12']);
});

for (const c of CASES) {
  const rule = RULES_BY_ID.get(c.id)!;
  describe(`${rule.code} ${c.id}`, () => {
    test('fires on a minimal incident, at its last event', () => {
      checkFires(c, rule, c.incident(new EventsBuilder(), 0), c.severity, c.confidence);
    });

    for (const tier of c.tiers) {
      test(`fires: ${tier.name} -> ${tier.severity} ${tier.confidence}`, () => {
        checkFires(c, rule, tier.events(new EventsBuilder()), tier.severity, tier.confidence, tier.evidence);
      });
    }

    for (const miss of c.misses) {
      test(`does not fire: ${miss.name}`, () => {
        assert.deepEqual(ofRule(run(miss.events(new EventsBuilder())).results, c.id), []);
      });
    }

    test('cooldown suppresses firing until now >= T + cooldown, then releases', () => {
      const b = new EventsBuilder();
      let stream: Event[];
      if (c.cooldownStream !== undefined) stream = c.cooldownStream(b);
      else {
        const first = c.incident(b, 0);
        const firedAt = (first[first.length - 1]!.timestamp - T0) / 1000;
        stream = [...first, ...c.incident(b, firedAt + 1), ...c.incident(b, firedAt + rule.cooldownMs / 1000)];
      }
      const mine = ofRule(run(stream).results, c.id);
      assert.ok(mine.length >= 2, `expected a firing after the cooldown, got ${mine.length}`);
      const t1 = mine[0]!.triggeredAt;
      const t2 = mine[1]!.triggeredAt;
      assert.ok(t2 >= t1 + rule.cooldownMs, 'second firing inside the cooldown');
      // Something in (t1, t1 + cooldown) would have fired without the cooldown; none did.
      assert.ok(stream.some((e) => e.timestamp > t1 && e.timestamp < t1 + rule.cooldownMs));
    });

    test('late events are counted and ignored', () => {
      const b = new EventsBuilder();
      const incident = c.incident(b, 0);
      const { engine, results } = run([c.harmless(b, 10_000), ...incident]);
      assert.deepEqual(ofRule(results, c.id), []);
      assert.equal(engine.stats.rules[c.id]!.lateEvents, incident.length);
    });

    if (c.otherKey !== null) {
      const move = c.otherKey;
      test('events of another scope key never mix in', () => {
        const events = c.incident(new EventsBuilder(), 0);
        const moved = move(events[0]!);
        assert.notEqual(scopeKeyOf(rule, moved), null);
        assert.notEqual(scopeKeyOf(rule, moved), c.key);
        assert.deepEqual(ofRule(run([moved, ...events.slice(1)]).results, c.id), []);
      });
    }
  });
}
