/**
 * A small, independent reading of the rule table in shared/design/RULES.md, written for these tests
 * only (no engine imported). Each check is one table row: which events are its inputs, under which
 * scope key, and when its condition holds at `now` over the key's stored events in the window.
 * `runChecks` replays events in delivery order with the allowed lateness and the cooldown.
 */
import type { Event } from '@tapio/events';

export type Severity = 'medium' | 'high' | 'critical';

export interface RuleCheck {
  id: string;
  windowMs: number;
  cooldownMs: number;
  /** The scope key the event is stored and evaluated under, or null when the rule does not see it. */
  key(e: Event): string | null;
  /**
   * The severity if the condition holds at `now`. `stored` holds the key's non-late input events in
   * arrival order (not only the window: R9 looks back 120 s while W is 60 s).
   */
  evaluate(stored: readonly Event[], now: number): Severity | null;
}

export interface Fire {
  ruleId: string;
  entityKey: string;
  severity: Severity;
  triggerEventId: string;
}

const S = 1000;

function containerKey(e: Event): string | null {
  const { kind, namespace, pod, name } = e.entity;
  return kind === 'container' && namespace !== null && pod !== null ? `container/${namespace}/${pod}/${name}` : null;
}

function podKey(e: Event): string | null {
  const { kind, namespace, pod, name } = e.entity;
  if (namespace === null) return null;
  if (kind === 'pod') return `pod/${namespace}/${name}`;
  if (kind === 'container' && pod !== null) return `pod/${namespace}/${pod}`;
  return null;
}

function nodeKey(e: Event): string | null {
  const node = e.entity.kind === 'node' ? e.entity.name : e.entity.node;
  return node === null ? null : `node/${node}`;
}

const attr = (e: Event, name: string): number => e.attributes[name] ?? Number.NaN;
const inWindow = (stored: readonly Event[], now: number, w: number) =>
  stored.filter((e) => e.timestamp >= now - w && e.timestamp <= now);
const ofType = (events: readonly Event[], type: string) => events.filter((e) => e.type === type);

/** "Latest": greatest timestamp, among equal ones the last to arrive. */
function latest(events: readonly Event[]): Event | undefined {
  let best: Event | undefined;
  for (const e of events) if (best === undefined || e.timestamp >= best.timestamp) best = e;
  return best;
}

/** Least squares over (seconds, value): slope and Pearson r. */
function regression(points: ReadonlyArray<readonly [number, number]>): { slope: number; r: number } {
  const n = points.length;
  let sx = 0;
  let sy = 0;
  for (const [x, y] of points) {
    sx += x;
    sy += y;
  }
  const mx = sx / n;
  const my = sy / n;
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (const [x, y] of points) {
    sxy += (x - mx) * (y - my);
    sxx += (x - mx) ** 2;
    syy += (y - my) ** 2;
  }
  return { slope: sxy / sxx, r: sxy / Math.sqrt(sxx * syy) };
}

function memoryPoints(samples: readonly Event[]): Array<[number, number]> {
  return samples.map((e) => [e.timestamp / 1000, attr(e, 'usage_bytes')]);
}

function ratioOf(e: Event): number {
  const limit = attr(e, 'limit_bytes');
  return limit > 0 ? attr(e, 'usage_bytes') / limit : Number.NaN;
}

const distinct = (events: readonly Event[]) => new Set(events.map(podKey)).size;

export const CHECKS: readonly RuleCheck[] = [
  {
    id: 'memory-pressure-cascade',
    windowMs: 120 * S,
    cooldownMs: 300 * S,
    key: (e) => (e.type === 'memory.oom_kill' || e.type === 'pod.restart' ? nodeKey(e) : null),
    evaluate(stored, now) {
      const win = inWindow(stored, now, this.windowMs);
      const ooms = ofType(win, 'memory.oom_kill');
      if (ooms.length === 0) return null;
      const k = Math.min(...ooms.map((e) => e.timestamp));
      const restarts = ofType(win, 'pod.restart').filter((e) => e.timestamp >= k);
      if (restarts.length < 2) return null;
      return distinct(restarts) >= 2 ? 'high' : 'medium';
    },
  },
  {
    id: 'memory-leak',
    windowMs: 1800 * S,
    cooldownMs: 900 * S,
    key: (e) => (e.type === 'memory.usage' ? containerKey(e) : null),
    evaluate(stored, now) {
      const win = inWindow(stored, now, this.windowMs);
      if (win.length < 10) return null;
      const { slope, r } = regression(memoryPoints(win));
      const last = latest(win);
      const ratio = last === undefined ? Number.NaN : ratioOf(last);
      if (!(slope > 0 && r >= 0.8 && ratio >= 0.8)) return null;
      return ratio >= 0.95 ? 'critical' : ratio >= 0.9 ? 'high' : 'medium';
    },
  },
  {
    id: 'oom-prediction',
    windowMs: 300 * S,
    cooldownMs: 600 * S,
    key: (e) => (e.type === 'memory.usage' ? containerKey(e) : null),
    evaluate(stored, now) {
      const win = inWindow(stored, now, this.windowMs);
      if (win.length < 3) return null;
      const { slope } = regression(memoryPoints(win));
      const last = latest(win);
      if (last === undefined || !(slope > 0) || !(ratioOf(last) >= 0.7)) return null;
      const secondsToLimit = (attr(last, 'limit_bytes') - attr(last, 'usage_bytes')) / slope;
      return secondsToLimit <= 1800 ? 'critical' : null;
    },
  },
  {
    id: 'cpu-throttle-impact',
    windowMs: 300 * S,
    cooldownMs: 300 * S,
    key: (e) => (e.type === 'cpu.throttle' || e.type === 'syscall.timeout' ? podKey(e) : null),
    evaluate(stored, now) {
      const win = inWindow(stored, now, this.windowMs);
      const throttles = ofType(win, 'cpu.throttle');
      if (throttles.length < 2) return null;
      const mean = throttles.reduce((s, e) => s + attr(e, 'throttle_ratio'), 0) / throttles.length;
      const timeout = ofType(win, 'syscall.timeout').some((e) => e.timestamp >= now - 120 * S);
      if (!(mean >= 0.25) || !timeout) return null;
      return mean > 0.7 ? 'critical' : mean > 0.5 ? 'high' : 'medium';
    },
  },
  {
    id: 'cpu-contention',
    windowMs: 300 * S,
    cooldownMs: 600 * S,
    key(e) {
      if (e.type === 'cpu.throttle') return nodeKey(e);
      if (e.type === 'cpu.usage' && e.entity.kind === 'node') return nodeKey(e);
      return null;
    },
    evaluate(stored, now) {
      const win = inWindow(stored, now, this.windowMs);
      const hot = ofType(win, 'cpu.throttle').filter((e) => attr(e, 'throttle_ratio') >= 0.1);
      const n = distinct(hot);
      const usage = latest(ofType(win, 'cpu.usage'));
      if (n < 3 || usage === undefined || !(attr(usage, 'usage_ratio') >= 0.8)) return null;
      return n >= 6 || attr(usage, 'usage_ratio') >= 0.98 ? 'critical' : 'high';
    },
  },
  {
    id: 'high-cpu-pattern',
    windowMs: 900 * S,
    cooldownMs: 900 * S,
    key: (e) => (e.type === 'cpu.usage' && e.entity.kind === 'pod' ? podKey(e) : null),
    evaluate(stored, now) {
      const win = inWindow(stored, now, this.windowMs);
      if (win.length < 10) return null;
      const values = win.map((e) => attr(e, 'usage_ratio'));
      const mean = values.reduce((a, b) => a + b, 0) / values.length;
      const hotShare = values.filter((v) => v > 0.9).length / values.length;
      if (!(mean >= 0.8) || !(hotShare >= 0.3)) return null;
      return mean >= 0.95 ? 'critical' : 'high';
    },
  },
  {
    id: 'crash-loop',
    windowMs: 900 * S,
    cooldownMs: 120 * S,
    key: (e) => (e.type === 'pod.restart' ? podKey(e) : null),
    evaluate(stored, now) {
      const win = inWindow(stored, now, this.windowMs);
      if (win.length < 3) return null;
      const times = win.map((e) => e.timestamp).sort((a, b) => a - b);
      const tight = times.every((t, i) => i === 0 || t - (times[i - 1] ?? t) <= 30 * S);
      return win.length >= 5 || tight ? 'critical' : 'high';
    },
  },
  {
    id: 'dns-failure-storm',
    windowMs: 60 * S,
    cooldownMs: 300 * S,
    key: (e) =>
      e.type === 'network.dns_failure' && e.entity.namespace !== null ? `namespace/${e.entity.namespace}` : null,
    evaluate(stored, now) {
      const win = inWindow(stored, now, this.windowMs);
      const pods = distinct(win);
      if (win.length < 5 || pods < 2) return null;
      return pods >= 5 ? 'critical' : 'high';
    },
  },
  {
    id: 'connection-failure-cascade',
    windowMs: 60 * S,
    cooldownMs: 300 * S,
    key(e) {
      if (e.type === 'network.connection_failure') {
        const destination = e.labels['destination'];
        return destination === undefined ? null : `service/${destination}`;
      }
      if (e.type === 'pod.restart' || e.type === 'pod.not_ready') {
        const { namespace, service } = e.entity;
        return namespace !== null && service !== null ? `service/${namespace}/${service}` : null;
      }
      return null;
    },
    evaluate(stored, now) {
      const failures = ofType(inWindow(stored, now, this.windowMs), 'network.connection_failure');
      if (failures.length < 10 || distinct(failures) < 2) return null;
      const trouble = inWindow(stored, now, 120 * S).some(
        (e) => e.type === 'pod.restart' || e.type === 'pod.not_ready',
      );
      return trouble ? 'critical' : 'high';
    },
  },
  {
    id: 'disk-pressure',
    windowMs: 0,
    cooldownMs: 600 * S,
    key: (e) => (e.type === 'disk.usage' ? nodeKey(e) : null),
    evaluate(stored) {
      const e = stored[stored.length - 1];
      if (e === undefined) return null;
      const usage = attr(e, 'usage_ratio');
      const inodes = attr(e, 'inode_ratio');
      if (!(usage >= 0.85 || inodes >= 0.9)) return null;
      return usage >= 0.95 || inodes >= 0.95 ? 'critical' : 'high';
    },
  },
  {
    id: 'volume-mount-failure',
    windowMs: 600 * S,
    cooldownMs: 600 * S,
    key: (e) => (e.type === 'volume.mount_failed' ? podKey(e) : null),
    evaluate(stored, now) {
      return inWindow(stored, now, this.windowMs).length >= 2 ? 'high' : null;
    },
  },
  {
    id: 'node-pressure-eviction',
    windowMs: 300 * S,
    cooldownMs: 300 * S,
    key: (e) => (e.type === 'node.pressure' || e.type === 'pod.evicted' ? nodeKey(e) : null),
    evaluate(stored, now) {
      const win = inWindow(stored, now, this.windowMs);
      const pressures = ofType(win, 'node.pressure');
      if (pressures.length === 0) return null;
      const p = Math.min(...pressures.map((e) => e.timestamp));
      const evictions = ofType(win, 'pod.evicted').filter((e) => e.timestamp >= p);
      if (evictions.length < 2) return null;
      return evictions.length >= 5 ? 'critical' : 'high';
    },
  },
];

export const CHECK_BY_ID = new Map(CHECKS.map((c) => [c.id, c]));

/**
 * Replays `events` in the given (delivery) order through `checks`, per rule and key: drops events
 * older than the key's watermark minus `latenessMs`, evaluates at each input event, applies the
 * cooldown. Returns the fires in order.
 */
export function runChecks(
  events: readonly Event[],
  checks: readonly RuleCheck[] = CHECKS,
  latenessMs = 60 * S,
): Fire[] {
  const fires: Fire[] = [];
  for (const check of checks) {
    const stored = new Map<string, Event[]>();
    const watermark = new Map<string, number>();
    const firedAt = new Map<string, number>();
    for (const e of events) {
      const key = check.key(e);
      if (key === null) continue;
      const mark = watermark.get(key) ?? Number.NEGATIVE_INFINITY;
      if (e.timestamp < mark - latenessMs) continue;
      watermark.set(key, Math.max(mark, e.timestamp));
      const list = stored.get(key) ?? [];
      list.push(e);
      stored.set(key, list);
      // W = 0 rules read only the arriving event.
      const severity = check.evaluate(check.windowMs === 0 ? [e] : list, e.timestamp);
      if (severity === null) continue;
      const last = firedAt.get(key);
      if (last !== undefined && e.timestamp < last + check.cooldownMs) continue;
      firedAt.set(key, e.timestamp);
      fires.push({ ruleId: check.id, entityKey: key, severity, triggerEventId: e.id });
    }
  }
  return fires;
}
