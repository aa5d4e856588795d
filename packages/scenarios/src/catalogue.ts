/**
 * One incident and several near misses per rule of shared/design/RULES.md.
 *
 * Every incident makes its rule fire exactly once: the condition first holds at the returned trigger
 * event, and the events after it keep it true (to exercise the cooldown) but all lie before
 * `trigger + cooldown`. Near misses miss the condition at every event by the smallest margin the
 * table allows: one event short, 1 ms outside the window, a ratio just under the bar, or node rules
 * fed by pods without a node. No scenario satisfies any other rule's condition either.
 */
import type { Event } from '@tapio/events';
import type { ScenarioBuilder } from './builder';
import { MIB } from './builder';
import type { Pod, ScenarioWorld } from './entities';
import { scopeKeys } from './entities';
import type { Rng } from './prng';
import type { DetectionSeverity, ExpectedDetection, RuleId, ScenarioInfo } from './types';

const S = 1000;

export interface BuildContext {
  readonly rng: Rng;
  readonly world: ScenarioWorld;
  readonly b: ScenarioBuilder;
}

export interface ScenarioDef extends ScenarioInfo {
  /** Appends the events to `ctx.b` and returns the detection they must cause (incidents only). */
  build(ctx: BuildContext): ExpectedDetection | null;
}

function detection(ruleId: RuleId, entityKey: string, severity: DetectionSeverity, trigger: Event): ExpectedDetection {
  return { ruleId, entityKey, severity, triggerEventId: trigger.id };
}

/** Runs `[offset, emit]` actions in offset order and returns their events in the given order. */
function inOrder(actions: ReadonlyArray<readonly [number, (offsetMs: number) => Event]>): Event[] {
  const order = actions.map((_, i) => i).sort((x, y) => (actions[x]?.[0] ?? 0) - (actions[y]?.[0] ?? 0));
  const out = new Array<Event>(actions.length);
  for (const i of order) {
    const action = actions[i];
    if (action !== undefined) out[i] = action[1](action[0]);
  }
  return out;
}

function pods(world: ScenarioWorld, service: string, count: number, nodeless = false): Pod[] {
  const out: Pod[] = [];
  for (let i = 0; i < count; i++) out.push(world.pod(service, nodeless));
  return out;
}

/** A pod of each of `count` services of the instance, so throttled pods look like different workloads. */
function podsOfServices(world: ScenarioWorld, count: number, nodeless = false): Pod[] {
  const out: Pod[] = [];
  for (let i = 0; i < count; i++) out.push(world.pod(world.service(i + 1), nodeless));
  return out;
}

function main(pod: Pod): string {
  return pod.containers[0] ?? pod.service;
}

function only<T>(items: readonly T[], index: number): T {
  const item = items[index];
  if (item === undefined) throw new RangeError(`index ${index} out of range`);
  return item;
}

const LIMITS_MIB: readonly number[] = [512, 1024, 2048, 4096];
const EXIT_CODES: readonly number[] = [1, 2, 137, 139];
const OOM_SOURCES: readonly string[] = ['ebpf', 'kubernetes', 'journald'];
const RCODES: readonly string[] = ['SERVFAIL', 'NXDOMAIN', 'REFUSED'];
const CONN_ERRORS: readonly string[] = ['ECONNREFUSED', 'ETIMEDOUT', 'ECONNRESET'];
const SYSCALLS: readonly string[] = ['futex', 'epoll_wait', 'read', 'connect'];
const VOLUMES: readonly string[] = ['data', 'config', 'tls-certs', 'cache'];

// ---------------------------------------------------------------- R1 memory-pressure-cascade
// node, W = 120 s: k = earliest oom_kill in the window, >= 2 pod.restart in [k, now]. Cooldown 300 s.

function memoryPressureCascade(ctx: BuildContext, variant: 'incident' | 'short' | 'outside' | 'nodeless') {
  const { rng, world, b } = ctx;
  const nodeless = variant === 'nodeless';
  const [a, p2, p3] = pods(world, world.service(1), 3, nodeless) as [Pod, Pod, Pod];
  // The kernel reports the OOM kill with the node even when the pod events lack it.
  const oomPod = nodeless ? { ...a, node: world.node } : a;
  b.oomKill(0, oomPod, main(a), rng.pick(OOM_SOURCES));
  b.podRestart(4 * S + rng.int(0, 4 * S), a, 1, 137);
  if (variant === 'short') return null;
  if (variant === 'outside') {
    b.podRestart(120 * S + 1, p2, 1, 137);
    return null;
  }
  const distinct = rng.chance(0.5);
  const at = distinct ? 20 * S + rng.int(0, 20 * S) : 60 * S + rng.int(0, 30 * S);
  const trigger = b.podRestart(at, distinct ? p2 : a, distinct ? 1 : 2, 137);
  b.podRestart(at + 10 * S + rng.int(0, 10 * S), p3, 1, 137);
  if (nodeless) return null;
  return detection('memory-pressure-cascade', scopeKeys.node(world.node), distinct ? 'high' : 'medium', trigger);
}

// ---------------------------------------------------------------- R2 memory-leak
// container, W = 1800 s: n >= 10, slope > 0, r >= 0.8, latest usage/limit >= 0.8. Cooldown 900 s.
// Leaks stay slow enough that R3's time-to-limit stays above 1800 s, so R3 never fires on them.

type LeakVariant = 'incident' | 'short' | 'outside' | 'under' | 'uncorrelated';

function memoryLeak(ctx: BuildContext, variant: LeakVariant) {
  const { rng, world, b } = ctx;
  const pod = world.pod(world.service(1));
  const container = main(pod);
  const limit = rng.pick(LIMITS_MIB) * MIB;
  const sample = (offsetMs: number, ratio: number) => b.memoryUsage(offsetMs, pod, container, ratio, limit);

  if (variant === 'uncorrelated') {
    // A sawtooth around 0.82 with a faint trend: r stays near 0.5. With 120 s spacing R3's 300 s
    // window holds 3 samples, over which the sawtooth cancels out.
    const c = rng.float(0.82, 0.83);
    for (let i = 0; i < 12; i++) sample(i * 120 * S, c + 0.0015 * i + (i % 2 === 0 ? 0.01 : -0.01));
    return null;
  }
  const longLeak = variant === 'under' || (variant === 'incident' && rng.chance(1 / 3));
  if (longLeak) {
    // Rises by 0.145 over 30 min, one sample a minute; the last sample is the first at or above 0.8.
    const last = variant === 'under' ? rng.float(0.797, 0.799) : rng.float(0.801, 0.803);
    const step = 0.145 / 30;
    let trigger: Event | null = null;
    for (let i = 0; i <= 30; i++) {
      const ratio = i === 30 ? last : last - step * (30 - i) + rng.float(-0.0004, 0.0004);
      const e = sample(i * 60 * S + rng.int(0, 1500), ratio);
      if (i === 30) trigger = e;
    }
    if (variant === 'under' || trigger === null) return null;
    for (let i = 31; i <= 33; i++) sample(i * 60 * S + rng.int(0, 1500), last + step * (i - 30));
    return detection('memory-leak', scopeKeys.container(pod, container), 'medium', trigger);
  }
  // A container that starts high and creeps up: the condition first holds at the 10th sample.
  const critical = variant === 'incident' && rng.chance(0.5);
  const start = critical ? rng.float(0.952, 0.955) : rng.float(0.902, 0.905);
  const step = critical ? 0.0008 : 0.001;
  const ratio = (i: number) => start + step * i + rng.float(-0.0001, 0.0001);
  if (variant === 'outside') {
    // Ten samples whose first is 1 ms older than the window at the tenth.
    for (let i = 0; i < 10; i++) sample(i * 200 * S + (i === 9 ? 1 : 0), ratio(i));
    return null;
  }
  const count = variant === 'short' ? 9 : 12;
  let trigger: Event | null = null;
  for (let i = 0; i < count; i++) {
    const e = sample(i * 60 * S + rng.int(0, 1500), ratio(i));
    if (i === 9) trigger = e;
  }
  if (variant === 'short' || trigger === null) return null;
  return detection('memory-leak', scopeKeys.container(pod, container), critical ? 'critical' : 'high', trigger);
}

// ---------------------------------------------------------------- R3 oom-prediction
// container, W = 300 s: n >= 3, slope > 0, latest usage/limit >= 0.7, (limit - usage) / slope <= 1800 s.
// Cooldown 600 s. At most 8 samples, so R2 (n >= 10) never fires on them.

function oomPrediction(ctx: BuildContext, variant: 'incident' | 'under' | 'short' | 'outside' | 'slow') {
  const { rng, world, b } = ctx;
  const pod = world.pod(world.service(1));
  const container = main(pod);
  const limit = rng.pick(LIMITS_MIB) * MIB;
  const sample = (offsetMs: number, ratio: number) => b.memoryUsage(offsetMs, pod, container, ratio, limit);
  switch (variant) {
    case 'short':
      sample(0, 0.65);
      sample(30 * S, 0.76);
      return null;
    case 'outside':
      sample(0, 0.62);
      sample(150 * S, 0.68);
      sample(300 * S + 1, 0.74);
      return null;
    case 'slow': {
      // Exactly linear, time to limit 1900 s at the third sample.
      const slopePerMinute = (0.28 * 60) / 1900;
      for (let i = 0; i < 3; i++) sample(i * 60 * S, 0.72 - slopePerMinute * (2 - i));
      return null;
    }
    default:
      break;
  }
  const base = rng.float(0.48, 0.52);
  for (let i = 0; i < 3; i++) sample(i * 30 * S + rng.int(0, 2 * S), base + rng.float(-0.004, 0.004));
  sample(90 * S + rng.int(0, 2 * S), 0.58);
  sample(120 * S + rng.int(0, 2 * S), 0.64);
  if (variant === 'under') {
    sample(150 * S + rng.int(0, 2 * S), 0.69);
    return null;
  }
  const trigger = sample(150 * S + rng.int(0, 2 * S), rng.float(0.71, 0.72));
  sample(180 * S + rng.int(0, 2 * S), 0.77);
  sample(210 * S + rng.int(0, 2 * S), 0.83);
  return detection('oom-prediction', scopeKeys.container(pod, container), 'critical', trigger);
}

// ---------------------------------------------------------------- R4 cpu-throttle-impact
// pod, W = 300 s: n >= 2 throttles with mean ratio >= 0.25 and a syscall.timeout in [now - 120 s, now].
// Cooldown 300 s.

function cpuThrottleImpact(ctx: BuildContext, variant: 'incident' | 'under' | 'short' | 'outside') {
  const { rng, world, b } = ctx;
  const pod = world.pod(world.service(1));
  const timeout = (offsetMs: number) => b.syscallTimeout(offsetMs, pod, rng.int(2000, 10000), rng.pick(SYSCALLS));
  if (variant === 'outside') {
    timeout(0);
    b.cpuThrottle(60 * S, pod, 0.6);
    b.cpuThrottle(120 * S + 1, pod, 0.6);
    return null;
  }
  if (variant === 'short') {
    b.cpuThrottle(0, pod, 0.6);
    timeout(30 * S);
    return null;
  }
  const level = variant === 'under' ? 'under' : rng.pick(['medium', 'high', 'critical'] as const);
  const mean = {
    under: 0.245,
    medium: rng.float(0.32, 0.44),
    high: rng.float(0.56, 0.66),
    critical: rng.float(0.76, 0.88),
  }[level];
  const spread = rng.float(0, 0.02);
  b.cpuThrottle(0, pod, mean + spread);
  b.cpuThrottle(20 * S + rng.int(0, 10 * S), pod, mean - spread);
  const at = 45 * S + rng.int(0, 15 * S);
  const trigger = timeout(at);
  if (level === 'under') return null;
  b.cpuThrottle(at + 30 * S, pod, mean);
  return detection('cpu-throttle-impact', scopeKeys.pod(pod), level, trigger);
}

// ---------------------------------------------------------------- R5 cpu-contention
// node, W = 300 s: >= 3 distinct pods with a throttle >= 0.1, latest node cpu.usage >= 0.8. Cooldown 600 s.

function cpuContention(ctx: BuildContext, variant: 'incident' | 'short' | 'under' | 'outside' | 'nodeless') {
  const { rng, world, b } = ctx;
  const { cluster, node } = world;
  const throttled = podsOfServices(world, 6, variant === 'nodeless');
  const nodeUsage = (ratio: number) => (o: number) => b.nodeCpuUsage(o, cluster, node, ratio);
  const throttle = (i: number) => (o: number) => b.cpuThrottle(o, only(throttled, i), rng.float(0.15, 0.5));
  const key = scopeKeys.node(node);

  if (variant === 'incident') {
    const shape = rng.pick(['high', 'critical-usage', 'critical-pods'] as const);
    if (shape === 'critical-pods') {
      // Six pods throttle before any node sample arrives; the node sample triggers with n = 6.
      for (let i = 0; i < 6; i++) throttle(i)(i * 10 * S + rng.int(0, 2 * S));
      const trigger = nodeUsage(rng.float(0.82, 0.9))(60 * S);
      nodeUsage(rng.float(0.82, 0.9))(90 * S);
      return detection('cpu-contention', key, 'critical', trigger);
    }
    const level = (): number => (shape === 'high' ? rng.float(0.82, 0.9) : rng.float(0.982, 0.995));
    const events = inOrder([
      [0, nodeUsage(level())],
      [30 * S, nodeUsage(level())],
      [40 * S + rng.int(0, 5 * S), throttle(0)],
      [60 * S, nodeUsage(level())],
      [70 * S + rng.int(0, 5 * S), throttle(1)],
      [90 * S, nodeUsage(level())],
      [100 * S + rng.int(0, 5 * S), throttle(2)],
      [120 * S, nodeUsage(level())],
    ]);
    return detection('cpu-contention', key, shape === 'high' ? 'high' : 'critical', only(events, 6));
  }
  const usage = () => (variant === 'under' ? rng.float(0.76, 0.795) : rng.float(0.82, 0.9));
  const actions: Array<readonly [number, (o: number) => Event]> = [];
  const samples = variant === 'outside' ? 12 : 5;
  for (let i = 0; i < samples; i++) actions.push([i * 30 * S, nodeUsage(usage())]);
  if (variant === 'outside') {
    actions.push([10 * S, throttle(0)], [151 * S + rng.int(0, 5 * S), throttle(1)], [310 * S + 1, throttle(2)]);
  } else {
    actions.push([40 * S, throttle(0)], [70 * S, throttle(1)]);
    if (variant !== 'short') actions.push([100 * S, throttle(2)]);
  }
  inOrder(actions);
  return null;
}

// ---------------------------------------------------------------- R6 high-cpu-pattern
// pod, W = 900 s: n >= 10 pod cpu.usage samples, mean >= 0.8, >= 30 % of them > 0.9. Cooldown 900 s.

function highCpuPattern(ctx: BuildContext, variant: 'incident' | 'short' | 'under' | 'share' | 'outside') {
  const { rng, world, b } = ctx;
  const pod = world.pod(world.service(1));
  let values: number[];
  let critical = false;
  const mixed = (hot: number, total: number) => {
    const v: number[] = [];
    for (let i = 0; i < total; i++) v.push(i < hot ? rng.float(0.92, 0.97) : rng.float(0.82, 0.88));
    return rng.shuffled(v);
  };
  switch (variant) {
    case 'incident':
      critical = rng.chance(0.5);
      if (critical) {
        values = [];
        for (let i = 0; i < 12; i++) values.push(rng.float(0.955, 0.995));
      } else {
        values = [...mixed(4, 10), ...mixed(1, 2)];
      }
      break;
    case 'short':
      values = mixed(4, 9);
      break;
    case 'share':
      values = mixed(2, 10);
      break;
    case 'under': {
      // Three samples above 0.9, the others lowered so that the mean is 0.795.
      const hot = [0.92, 0.93, 0.91];
      const rest = (0.795 * 10 - 0.92 - 0.93 - 0.91) / 7;
      const cold: number[] = [];
      for (let i = 0; i < 3; i++) {
        const d = rng.float(0, 0.03);
        cold.push(rest + d, rest - d);
      }
      cold.push(rest);
      values = rng.shuffled([...hot, ...cold]);
      break;
    }
    case 'outside':
      values = mixed(4, 10);
      break;
  }
  let trigger: Event | null = null;
  values.forEach((v, i) => {
    const offset = variant === 'outside' ? i * 100 * S + (i === 9 ? 1 : 0) : i * 60 * S + rng.int(0, 2 * S);
    const e = b.podCpuUsage(offset, pod, v);
    if (i === 9) trigger = e;
  });
  if (variant !== 'incident' || trigger === null) return null;
  return detection('high-cpu-pattern', scopeKeys.pod(pod), critical ? 'critical' : 'high', trigger);
}

// ---------------------------------------------------------------- R7 crash-loop
// pod, W = 900 s: n >= 3 restarts. critical if n >= 5 or every gap <= 30 s. Cooldown 120 s.

function crashLoop(ctx: BuildContext, variant: 'incident' | 'short' | 'outside') {
  const { rng, world, b } = ctx;
  const pod = world.pod(world.service(1));
  const code = rng.pick(EXIT_CODES);
  if (variant === 'short') {
    b.podRestart(0, pod, 1, code);
    b.podRestart(40 * S + rng.int(0, 60 * S), pod, 2, code);
    return null;
  }
  if (variant === 'outside') {
    b.podRestart(0, pod, 1, code);
    b.podRestart(450 * S, pod, 2, code);
    b.podRestart(900 * S + 1, pod, 3, code);
    return null;
  }
  const tight = rng.chance(0.5);
  const offsets = tight ? [0, 10 * S + rng.int(0, 20 * S)] : [0, 60 * S + rng.int(0, 60 * S)];
  const second = only(offsets, 1);
  offsets.push(tight ? second + 10 * S + rng.int(0, 20 * S) : second + 90 * S + rng.int(0, 120 * S));
  offsets.forEach((o, i) => b.podRestart(o, pod, i + 1, code));
  const trigger = only(b.events, b.events.length - 1);
  b.podRestart(only(offsets, 2) + 40 * S + rng.int(0, 40 * S), pod, 4, code);
  return detection('crash-loop', scopeKeys.pod(pod), tight ? 'critical' : 'high', trigger);
}

// ---------------------------------------------------------------- R8 dns-failure-storm
// namespace, W = 60 s: n >= 5 failures from >= 2 distinct pods. critical if >= 5 pods. Cooldown 300 s.

function dnsFailureStorm(ctx: BuildContext, variant: 'incident' | 'short' | 'one-pod' | 'outside') {
  const { rng, world, b } = ctx;
  const clients = pods(world, world.service(1), 5);
  const query = `${world.service(2)}.${world.namespace}.svc.cluster.local`;
  const rcode = rng.pick(RCODES);
  const fail = (o: number, pod: Pod) => b.dnsFailure(o, pod, query, rcode);
  const wide = variant === 'incident' && rng.chance(0.5);
  const from = (i: number): Pod => only(clients, variant === 'one-pod' ? 0 : wide ? i % 5 : i % 2);
  const count = variant === 'short' ? 4 : variant === 'one-pod' ? 6 : 5;
  let trigger: Event | null = null;
  for (let i = 0; i < count; i++) {
    const offset = variant === 'outside' ? i * 15 * S + (i === 4 ? 1 : 0) : i * 8 * S + rng.int(0, 3 * S);
    const e = fail(offset, from(i));
    if (i === 4) trigger = e;
  }
  if (variant !== 'incident' || trigger === null) return null;
  fail(45 * S, from(5));
  fail(50 * S + rng.int(0, 5 * S), from(6));
  return detection('dns-failure-storm', scopeKeys.namespace(world.namespace), wide ? 'critical' : 'high', trigger);
}

// ---------------------------------------------------------------- R9 connection-failure-cascade
// service, W = 60 s: n >= 10 failures from >= 2 source pods. critical if a pod.restart or pod.not_ready
// of the service lies in [now - 120 s, now]. Cooldown 300 s.

function connectionFailureCascade(ctx: BuildContext, variant: 'incident' | 'short' | 'one-pod' | 'outside') {
  const { rng, world, b } = ctx;
  const target = world.service(0);
  const backend = world.pod(target);
  const callers = pods(world, world.service(2), 3);
  const destination = `${world.namespace}/${target}`;
  const error = rng.pick(CONN_ERRORS);
  const critical = variant === 'incident' && rng.chance(0.5);
  if (critical) {
    if (rng.chance(0.5)) b.podNotReady(0, backend);
    else b.podRestart(0, backend, 1, rng.pick(EXIT_CODES));
  }
  const from = (i: number): Pod => only(callers, variant === 'one-pod' ? 0 : i % 3);
  const count = variant === 'short' ? 9 : variant === 'one-pod' ? 12 : 10;
  let trigger: Event | null = null;
  for (let i = 0; i < count; i++) {
    const offset =
      variant === 'outside'
        ? 10 * S + Math.round((i * 60 * S) / 9) + (i === 9 ? 1 : 0)
        : 10 * S + i * 4 * S + rng.int(0, 2 * S);
    const e = b.connectionFailure(offset, from(i), destination, error);
    if (i === 9) trigger = e;
  }
  if (variant !== 'incident' || trigger === null) return null;
  b.connectionFailure(60 * S, from(10), destination, error);
  b.connectionFailure(62 * S, from(11), destination, error);
  return detection(
    'connection-failure-cascade',
    scopeKeys.service(world.namespace, target),
    critical ? 'critical' : 'high',
    trigger,
  );
}

// ---------------------------------------------------------------- R10 disk-pressure
// node, W = 0: usage_ratio >= 0.85 or inode_ratio >= 0.9. critical if either >= 0.95. Cooldown 600 s.

function diskPressure(ctx: BuildContext, variant: 'incident' | 'under' | 'inode-under') {
  const { rng, world, b } = ctx;
  const disk = (o: number, usage: number, inode: number) => b.diskUsage(o, world.cluster, world.node, usage, inode);
  const inodes = rng.float(0.1, 0.3);
  if (variant === 'under') {
    [0.7, 0.78, 0.83, 0.849, 0.84].forEach((u, i) => disk(i * 60 * S, u, inodes));
    return null;
  }
  if (variant === 'inode-under') {
    [0.8, 0.85, 0.899, 0.89].forEach((n, i) => disk(i * 60 * S, 0.4, n));
    return null;
  }
  const key = scopeKeys.node(world.node);
  if (rng.chance(0.5)) {
    // Inode exhaustion (many small files) while bytes stay moderate.
    [0.5, 0.7, 0.85].forEach((n, i) => disk(i * 60 * S, 0.62, n));
    const trigger = disk(180 * S, 0.63, rng.float(0.955, 0.98));
    disk(240 * S, 0.63, 0.985);
    return detection('disk-pressure', key, 'critical', trigger);
  }
  [0.7, 0.76, 0.81].forEach((u, i) => disk(i * 60 * S, u, inodes));
  const trigger = disk(180 * S, rng.float(0.86, 0.93), inodes);
  disk(240 * S, 0.935, inodes);
  return detection('disk-pressure', key, 'high', trigger);
}

// ---------------------------------------------------------------- R11 volume-mount-failure
// pod, W = 600 s: n >= 2 failures. Cooldown 600 s.

function volumeMountFailure(ctx: BuildContext, variant: 'incident' | 'short' | 'outside') {
  const { rng, world, b } = ctx;
  const pod = world.pod(world.service(1));
  const volume = rng.pick(VOLUMES);
  b.volumeMountFailed(0, pod, volume);
  if (variant === 'short') return null;
  if (variant === 'outside') {
    b.volumeMountFailed(600 * S + 1, pod, volume);
    return null;
  }
  const at = 20 * S + rng.int(0, 40 * S);
  const trigger = b.volumeMountFailed(at, pod, volume);
  b.volumeMountFailed(at + 120 * S, pod, volume);
  return detection('volume-mount-failure', scopeKeys.pod(pod), 'high', trigger);
}

// ---------------------------------------------------------------- R12 node-pressure-eviction
// node, W = 300 s: p = earliest node.pressure in the window, >= 2 pod.evicted in [p, now]. Cooldown 300 s.
// Only `high` is reachable in timestamp order: the second eviction already fires.

function nodePressureEviction(
  ctx: BuildContext,
  variant: 'incident' | 'short' | 'outside' | 'nodeless' | 'evictions-first',
) {
  const { rng, world, b } = ctx;
  const condition = rng.pick(['MemoryPressure', 'DiskPressure', 'PIDPressure']);
  const reason = condition.replace('Pressure', '');
  const victims = podsOfServices(world, 3, variant === 'nodeless');
  const pressure = (o: number) => b.nodePressure(o, world.cluster, world.node, condition);
  const evict = (o: number, i: number) => b.podEvicted(o, only(victims, i), reason);
  switch (variant) {
    case 'evictions-first':
      evict(0, 0);
      evict(10 * S, 1);
      pressure(20 * S);
      return null;
    case 'outside':
      pressure(0);
      evict(100 * S, 0);
      evict(300 * S + 1, 1);
      return null;
    case 'short':
      pressure(0);
      evict(30 * S, 0);
      return null;
    default:
      break;
  }
  pressure(0);
  evict(10 * S + rng.int(0, 20 * S), 0);
  const at = 40 * S + rng.int(0, 30 * S);
  const trigger = evict(at, 1);
  evict(at + 20 * S, 2);
  if (variant === 'nodeless') return null;
  return detection('node-pressure-eviction', scopeKeys.node(world.node), 'high', trigger);
}

function def(
  ruleId: RuleId,
  variant: string,
  description: string,
  build: (ctx: BuildContext) => ExpectedDetection | null,
): ScenarioDef {
  const kind = variant === 'incident' ? 'incident' : 'near-miss';
  return { name: `${ruleId}:${variant}`, ruleId, kind, description, build };
}

export const SCENARIOS: readonly ScenarioDef[] = [
  def('memory-pressure-cascade', 'incident', 'OOM kill, then restarts of one or two pods on the node', (c) =>
    memoryPressureCascade(c, 'incident'),
  ),
  def('memory-pressure-cascade', 'short-by-one', 'OOM kill followed by a single restart', (c) =>
    memoryPressureCascade(c, 'short'),
  ),
  def('memory-pressure-cascade', 'outside-window', 'second restart 1 ms after the OOM kill leaves the window', (c) =>
    memoryPressureCascade(c, 'outside'),
  ),
  def('memory-pressure-cascade', 'no-node', 'OOM kill on the node, restarts from pods without a node', (c) =>
    memoryPressureCascade(c, 'nodeless'),
  ),
  def('memory-leak', 'incident', 'steady leak crossing 80 % of the limit', (c) => memoryLeak(c, 'incident')),
  def('memory-leak', 'short-by-one', 'nine rising samples above 90 %', (c) => memoryLeak(c, 'short')),
  def('memory-leak', 'outside-window', 'ten samples spanning 1800 s + 1 ms', (c) => memoryLeak(c, 'outside')),
  def('memory-leak', 'under-bar', 'steady leak peaking just under 80 %', (c) => memoryLeak(c, 'under')),
  def('memory-leak', 'low-correlation', 'sawtooth above 80 % with r well under 0.8', (c) =>
    memoryLeak(c, 'uncorrelated'),
  ),
  def('oom-prediction', 'incident', 'fast climb past 70 % heading for the limit', (c) => oomPrediction(c, 'incident')),
  def('oom-prediction', 'under-bar', 'fast climb stopping at 69 %', (c) => oomPrediction(c, 'under')),
  def('oom-prediction', 'short-by-one', 'two samples only', (c) => oomPrediction(c, 'short')),
  def('oom-prediction', 'outside-window', 'three samples spanning 300 s + 1 ms', (c) => oomPrediction(c, 'outside')),
  def('oom-prediction', 'slow-climb', 'above 70 % but 1900 s from the limit', (c) => oomPrediction(c, 'slow')),
  def('cpu-throttle-impact', 'incident', 'two throttles then a syscall timeout', (c) =>
    cpuThrottleImpact(c, 'incident'),
  ),
  def('cpu-throttle-impact', 'under-bar', 'mean throttle ratio 0.245', (c) => cpuThrottleImpact(c, 'under')),
  def('cpu-throttle-impact', 'short-by-one', 'one throttle and a timeout', (c) => cpuThrottleImpact(c, 'short')),
  def('cpu-throttle-impact', 'outside-window', 'timeout 120 s + 1 ms before the second throttle', (c) =>
    cpuThrottleImpact(c, 'outside'),
  ),
  def('cpu-contention', 'incident', 'busy node with three or six throttled pods', (c) => cpuContention(c, 'incident')),
  def('cpu-contention', 'short-by-one', 'busy node with two throttled pods', (c) => cpuContention(c, 'short')),
  def('cpu-contention', 'under-bar', 'three throttled pods, node usage under 80 %', (c) => cpuContention(c, 'under')),
  def('cpu-contention', 'outside-window', 'three throttled pods spanning 300 s + 1 ms', (c) =>
    cpuContention(c, 'outside'),
  ),
  def('cpu-contention', 'no-node', 'throttled pods without a node', (c) => cpuContention(c, 'nodeless')),
  def('high-cpu-pattern', 'incident', 'ten hot samples', (c) => highCpuPattern(c, 'incident')),
  def('high-cpu-pattern', 'short-by-one', 'nine hot samples', (c) => highCpuPattern(c, 'short')),
  def('high-cpu-pattern', 'under-bar', 'mean 0.795', (c) => highCpuPattern(c, 'under')),
  def('high-cpu-pattern', 'share-under-bar', 'only 20 % of samples above 0.9', (c) => highCpuPattern(c, 'share')),
  def('high-cpu-pattern', 'outside-window', 'ten samples spanning 900 s + 1 ms', (c) => highCpuPattern(c, 'outside')),
  def('crash-loop', 'incident', 'three restarts, then one more in the cooldown', (c) => crashLoop(c, 'incident')),
  def('crash-loop', 'short-by-one', 'two restarts', (c) => crashLoop(c, 'short')),
  def('crash-loop', 'outside-window', 'three restarts spanning 900 s + 1 ms', (c) => crashLoop(c, 'outside')),
  def('dns-failure-storm', 'incident', 'five failures from two or five pods', (c) => dnsFailureStorm(c, 'incident')),
  def('dns-failure-storm', 'short-by-one', 'four failures', (c) => dnsFailureStorm(c, 'short')),
  def('dns-failure-storm', 'one-pod', 'six failures from a single pod', (c) => dnsFailureStorm(c, 'one-pod')),
  def('dns-failure-storm', 'outside-window', 'five failures spanning 60 s + 1 ms', (c) =>
    dnsFailureStorm(c, 'outside'),
  ),
  def('connection-failure-cascade', 'incident', 'ten failures towards one service from three callers', (c) =>
    connectionFailureCascade(c, 'incident'),
  ),
  def('connection-failure-cascade', 'short-by-one', 'nine failures', (c) => connectionFailureCascade(c, 'short')),
  def('connection-failure-cascade', 'one-pod', 'twelve failures from a single caller', (c) =>
    connectionFailureCascade(c, 'one-pod'),
  ),
  def('connection-failure-cascade', 'outside-window', 'ten failures spanning 60 s + 1 ms', (c) =>
    connectionFailureCascade(c, 'outside'),
  ),
  def('disk-pressure', 'incident', 'disk or inodes filling up', (c) => diskPressure(c, 'incident')),
  def('disk-pressure', 'under-bar', 'disk usage peaking at 0.849', (c) => diskPressure(c, 'under')),
  def('disk-pressure', 'inode-under-bar', 'inode usage peaking at 0.899', (c) => diskPressure(c, 'inode-under')),
  def('volume-mount-failure', 'incident', 'two mount failures, a third in the cooldown', (c) =>
    volumeMountFailure(c, 'incident'),
  ),
  def('volume-mount-failure', 'short-by-one', 'one mount failure', (c) => volumeMountFailure(c, 'short')),
  def('volume-mount-failure', 'outside-window', 'two failures 600 s + 1 ms apart', (c) =>
    volumeMountFailure(c, 'outside'),
  ),
  def('node-pressure-eviction', 'incident', 'node pressure, then evictions', (c) =>
    nodePressureEviction(c, 'incident'),
  ),
  def('node-pressure-eviction', 'short-by-one', 'node pressure and one eviction', (c) =>
    nodePressureEviction(c, 'short'),
  ),
  def('node-pressure-eviction', 'outside-window', 'second eviction 300 s + 1 ms after the pressure', (c) =>
    nodePressureEviction(c, 'outside'),
  ),
  def('node-pressure-eviction', 'no-node', 'evicted pods without a node', (c) => nodePressureEviction(c, 'nodeless')),
  def('node-pressure-eviction', 'evictions-before-pressure', 'evictions older than the pressure', (c) =>
    nodePressureEviction(c, 'evictions-first'),
  ),
];
